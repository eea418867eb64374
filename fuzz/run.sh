#!/usr/bin/env bash
# Runs every fuzz target in turn, one process at a time, for SECONDS each
# (default 60), and prints libFuzzer's final figures per target.
#   fuzz/run.sh 600            # the 10-minute acceptance runs
#   fuzz/run.sh 60 yamux_session identify
# Logs: fuzz/logs/<target>.log. Crashes: fuzz/artifacts/<target>/.
set -uo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(RUSTC_BOOTSTRAP=1 cargo fuzz list)
fi
mkdir -p fuzz/logs
export RUSTC_BOOTSTRAP=1
cargo fuzz build || exit 1
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  seeds=()
  [ -d "fuzz/seeds/$t" ] && seeds=("fuzz/seeds/$t")
  # -jobs=1 runs one worker that logs to ./fuzz-0.log.
  rm -f fuzz-0.log
  cargo fuzz run "$t" "fuzz/corpus/$t" "${seeds[@]}" -- \
    -max_total_time="$seconds" -jobs=1 -print_final_stats=1 >"fuzz/logs/$t.driver.log" 2>&1
  status=$?
  cat fuzz/logs/"$t".driver.log fuzz-0.log >"fuzz/logs/$t.log" 2>/dev/null
  rm -f fuzz-0.log "fuzz/logs/$t.driver.log"
  last=$(grep -E '^#[0-9]+' "fuzz/logs/$t.log" | tail -1)
  execs=$(grep -E '^stat::number_of_executed_units' "fuzz/logs/$t.log" | tail -1 | awk '{print $2}')
  rate=$(grep -E '^stat::average_exec_per_sec' "fuzz/logs/$t.log" | tail -1 | awk '{print $2}')
  crash=$(grep -lE 'panicked|ERROR: libFuzzer|SUMMARY: ' "fuzz/logs/$t.log" >/dev/null && echo CRASH || echo ok)
  printf '%-26s exit=%s %s execs=%s exec/s=%s | %s\n' "$t" "$status" "$crash" "$execs" "$rate" "$last"
done
