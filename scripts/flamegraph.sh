#!/usr/bin/env bash
# Flame graphs of one benchmark scenario, one per process (client and
# listener), for any of the benchmark's stacks:
#
#   scripts/flamegraph.sh                        # peerswarm, 2 GiB download
#   scripts/flamegraph.sh --impl tcp             # raw TCP, the reference
#   scripts/flamegraph.sh --impl rust-libp2p --upload --bytes 1073741824
#   scripts/flamegraph.sh --scenario "setups --count=5000"   # any bench-node scenario
#   scripts/flamegraph.sh --out /tmp/fg          # where the SVGs go
#
# Writes <out>/<impl>-<what>-{client,listener}.svg, <what> being the
# direction or the scenario's name (default out: docs/flamegraphs), and the
# folded stacks beside them (.folded) for `inferno-diff-folded` or a second
# look. Samples on CPU time (`perf record -e cpu-clock`, which works in VMs
# without hardware counters) with frame-pointer call graphs (a separate
# build with frame pointers forced), kernel frames included. Needs `perf`
# (Debian: linux-perf) and inferno (`cargo install inferno`). Never run
# from CI.
set -euo pipefail
cd "$(dirname "$0")/.."

impl=peerswarm
direction=download
bytes=$((2 * 1024 * 1024 * 1024))
out=docs/flamegraphs
freq=997
scenario=
while [ $# -gt 0 ]; do
  case "$1" in
    --impl) impl=$2; shift 2 ;;
    --upload) direction=upload; shift ;;
    --download) direction=download; shift ;;
    --bytes) bytes=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --freq) freq=$2; shift 2 ;;
    --scenario) scenario=$2; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
for tool in perf inferno-collapse-perf inferno-flamegraph; do
  command -v "$tool" >/dev/null || { echo "$tool not found (see the header of $0)" >&2; exit 1; }
done

# Frame pointers let perf walk the stacks in the kernel at each sample;
# DWARF unwinding would copy every sample's stack out, and on two cores that
# copying slows the very transfer being measured. A separate target
# directory keeps this build from evicting the benchmark's.
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
fp_target="${target_dir:-target}/frame-pointers"
RUSTFLAGS="-C force-frame-pointers=yes" CARGO_TARGET_DIR="$fp_target" \
  cargo build --release --locked -p peerswarm-bench --bins
node="$fp_target/release/bench-node"

work=$(mktemp -d)
listener_pid=
cleanup() {
  [ -n "$listener_pid" ] && kill "$listener_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The listener runs until its stdin closes: hold it open with a FIFO.
mkfifo "$work/stdin"
"$node" --impl "$impl" listen <"$work/stdin" >"$work/addr" 2>"$work/listener.err" &
listener_pid=$!
exec 3>"$work/stdin"
for _ in $(seq 100); do [ -s "$work/addr" ] && break; sleep 0.05; done
addr=$(head -n1 "$work/addr")
[ -n "$addr" ] || { echo "the listener printed no address" >&2; cat "$work/listener.err" >&2; exit 1; }

if [ -n "$scenario" ]; then
  read -r -a run <<<"$scenario"
  label="${run[0]}"
  what="$scenario"
elif [ "$direction" = download ]; then
  run=(perf --upload=0 "--download=$bytes" --streams=1)
  label=$direction
  what="$direction of $bytes bytes"
else
  run=(perf "--upload=$bytes" --download=0 --streams=1)
  label=$direction
  what="$direction of $bytes bytes"
fi
record=(perf record -q -e cpu-clock -F "$freq" --call-graph fp)
"${record[@]}" -o "$work/listener.data" -p "$listener_pid" 2>"$work/perf-listener.err" &
perf_listener=$!
sleep 0.3
"${record[@]}" -o "$work/client.data" -- \
  "$node" --impl "$impl" client "$addr" "${run[@]}" >"$work/result" 2>"$work/perf-client.err"
kill -INT "$perf_listener"
wait "$perf_listener" || true
exec 3>&-
wait "$listener_pid" || true
listener_pid=

mkdir -p "$out"
for side in client listener; do
  svg="$out/$impl-$label-$side.svg"
  folded="$out/$impl-$label-$side.folded"
  perf script -i "$work/$side.data" 2>/dev/null | inferno-collapse-perf --all >"$folded"
  inferno-flamegraph --title "$impl, $what: $side" --minwidth 0.2 <"$folded" >"$svg"
  echo "$svg"
done
echo "result: $(cat "$work/result")"
