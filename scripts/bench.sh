#!/usr/bin/env bash
# The one command that reproduces every figure in BENCHMARKS.md:
#
#   scripts/bench.sh            # full run (a few minutes), rewrites BENCHMARKS.md,
#                               # docs/bench-ratios.svg and bench/results/latest.json
#   scripts/bench.sh --quick    # smoke run with small sizes
#   scripts/bench.sh --help     # every size knob
#
# Builds the harness in release mode and runs the driver from the repository
# root. Run it on a quiet machine: the table records the load average.
# Never run from CI.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked -p peerswarm-bench --bins

# 10 000 idle connections need more than the default 1 024 descriptors.
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ] || [ "$hard" -gt 65536 ]; then hard=65536; fi
ulimit -n "$hard"

target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
exec "${target_dir:-target}/release/bench" --root . "$@"
