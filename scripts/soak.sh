#!/usr/bin/env bash
# The soak test (issue 6): connection churn, stream churn, pinging and echo
# against one node, then a check that open fds, live tokio tasks and RSS
# came back to their post-warm-up baseline (within 5 %).
#
#   scripts/soak.sh                 # 600 s
#   scripts/soak.sh 60              # 60 s
#   scripts/soak.sh 3600 --report 300 --tolerance 5
#
# Prints fds/tasks/RSS at the start, periodically and at the end; exits
# non-zero if a figure did not come back or any operation failed. Builds
# the example in release mode. Not for CI (it takes minutes).
set -euo pipefail
cd "$(dirname "$0")/.."

duration=${1:-600}
if [ $# -gt 0 ]; then shift; fi

cargo build --release --locked -p peerswarm --example soak

target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
exec "${target_dir:-target}/release/examples/soak" --duration "$duration" "$@"
