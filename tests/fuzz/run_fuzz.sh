#!/usr/bin/env bash
# One ctest entry fuzz/<target> (tests/fuzz/CMakeLists.txt):
#   run_fuzz.sh <fuzz binary> <target> <tests/fuzz source dir> <seconds> <artifact dir>
# 1. replays every file of regressions/<target>/ (inputs that crashed once) and of the seed
#    corpus corpus/<target>/: any crash fails the test;
# 2. fuzzes from a copy of the seed corpus in a temporary folder (new inputs never land in the
#    source tree), with a per-input timeout and a memory limit. The run is deterministic: a fixed
#    seed and a fixed number of inputs (<seconds> x 5000, about <seconds> on this machine for the
#    slowest target), so a CI run fuzzes exactly the inputs a developer's run did and cannot fail
#    on a crash nobody has seen; 3 x <seconds> of wall time caps it on a slow machine (a prefix of
#    the same sequence). MOESEG_FUZZ_SEED changes the sequence for longer hunts by hand.
# A crash leaves its input in <artifact dir> and fails the test; fix the bug and copy the input
# into regressions/<target>/ so that it is replayed from then on.
set -euo pipefail
bin=$1 name=$2 src=$3 secs=$4 art=$5
corpus=$src/corpus/$name
reg=$src/regressions/$name
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
shopt -s nullglob
seeds=("$corpus"/*)
if ((${#seeds[@]} == 0)); then
  echo "fuzz/$name: the seed corpus $corpus is empty"
  exit 1
fi
mkdir -p "$art"
replay=("$reg"/* "${seeds[@]}")
echo "fuzz/$name: replaying ${#replay[@]} files (regressions: $((${#replay[@]} - ${#seeds[@]})), seeds: ${#seeds[@]})"
"$bin" -artifact_prefix="$art/" "${replay[@]}" >"$art/replay.log" 2>&1 || {
  tail -n 60 "$art/replay.log"
  echo "fuzz/$name: FAILED replaying the regression/seed inputs (log: $art/replay.log)"
  exit 1
}
work=$(mktemp -d "${TMPDIR:-/tmp}/moeseg_fuzz_${name}_XXXXXX")
trap 'rm -rf "$work"' EXIT
cp "${seeds[@]}" "$work/"
runs=$((secs * 5000))
seed=${MOESEG_FUZZ_SEED:-1}
echo "fuzz/$name: fuzzing $runs inputs (seed $seed, at most $((secs * 3)) s) from ${#seeds[@]} seeds"
if ! "$bin" -seed="$seed" -runs="$runs" -max_total_time=$((secs * 3)) -timeout=20 -rss_limit_mb=2560 -max_len=8192 -print_final_stats=1 \
     -artifact_prefix="$art/" "$work" >"$art/fuzz.log" 2>&1; then
  tail -n 80 "$art/fuzz.log"
  echo "fuzz/$name: FAILED: crashing input kept in $art/ (fix it, then add it to tests/fuzz/regressions/$name/)"
  exit 1
fi
grep -E "^(stat::number_of_executed_units|stat::new_units_added|#[0-9]+ *DONE)" "$art/fuzz.log" || true
echo "fuzz/$name: passed ($(ls "$work" | wc -l) corpus inputs after fuzzing)"
