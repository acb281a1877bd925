#!/usr/bin/env bash
# The first GPU contact: one command for a person with a GPU (issue 15). It
#   1. builds moeseg with CUDA for this GPU's architecture (compute capability from nvidia-smi);
#   2. runs every CUDA-device test case (tests/device, the CUDA cases of tests/core and
#      tests/layers) one process per case, so a crash names its case and the others still run;
#      among them one FRRN-A and one MoE training step on the GPU compared with the CPU;
#   3. runs compute-sanitizer's memcheck, racecheck, synccheck and initcheck over the device tests;
#   4. runs the kernel lab (bench/kernel_lab) at the production shapes next to cuDNN / cuBLAS;
#   5. trains FRRN-A for a few steps on synthetic scenes at 240x320 on the GPU (end-to-end img/s);
# and prints one summary table. Exit code 0 when every check passed (skips are not failures).
#
# With MOESEG_CUDA_EMULATE=1 on a machine without a GPU it runs the same steps on the emulated
# device (CUDA-on-CPU, guarded device memory) without compute-sanitizer and with small shapes:
# that is how it is known to work before anyone runs it on a GPU (ctest gpu_check_emulated).
#
# Options (environment):
#   MOESEG_GPU_BUILD=DIR      build folder (default build_gpu); MOESEG_GPU_NO_BUILD=1 uses it as is
#   MOESEG_GPU_OUT=DIR        logs (default DIR/gpu_check)
#   MOESEG_GPU_SANITIZER_TIMEOUT=S   seconds per compute-sanitizer tool (default 600)
#   MOESEG_GPU_CASE_TIMEOUT=S seconds per test case (default 900)
#   MOESEG_GPU_QUICK=1        fewer cases and repeats (the ctest run)
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=${MOESEG_GPU_BUILD:-build_gpu}
case $build in /*) ;; *) build=$root/$build ;; esac
case_timeout=${MOESEG_GPU_CASE_TIMEOUT:-900}
out=${MOESEG_GPU_OUT:-$build/gpu_check}
case $out in /*) ;; *) out=$root/$out ;; esac
quick=${MOESEG_GPU_QUICK:-0}
san_timeout=${MOESEG_GPU_SANITIZER_TIMEOUT:-600}
emulated=0
[ -n "${MOESEG_CUDA_EMULATE:-}" ] && [ "${MOESEG_CUDA_EMULATE}" != 0 ] && emulated=1
mkdir -p "$out"
summary="$out/summary.md"
: >"$summary"
: >"$out/cases.tsv"
failures=0
row() {   # row CHECK RESULT DETAIL
  printf '| %s | %s | %s |\n' "$1" "$2" "$3" >>"$summary"
  [ "$2" = FAIL ] && failures=$((failures + 1))
  return 0
}

# ---- the device --------------------------------------------------------------------------------
if ((emulated)); then
  device="emulated CUDA device (MOESEG_CUDA_EMULATE=1, CUDA-on-CPU)"
  arch=${MOESEG_CUDA_ARCHITECTURES:-80;90}
elif command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
  device=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -1)
  arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d '.')
else
  echo "gpu_check: no GPU found (nvidia-smi lists none); run with MOESEG_CUDA_EMULATE=1 to check the script itself" >&2
  exit 2
fi
echo "gpu_check: $device; CUDA architectures $arch; build $build; logs $out"

# ---- 1. build ----------------------------------------------------------------------------------
targets=(moeseg test_device test_core test_layers kernel_lab)
if [ "${MOESEG_GPU_NO_BUILD:-0}" != 1 ]; then
  t0=$(date +%s)
  if cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DMOESEG_CUDA=ON "-DMOESEG_CUDA_ARCHITECTURES=$arch" \
       ${MOESEG_GPU_CMAKE_ARGS:-} >"$out/configure.log" 2>&1 &&
     cmake --build "$build" -j"$(nproc)" --target "${targets[@]}" >"$out/build.log" 2>&1; then
    row build ok "sm_$arch, $(($(date +%s) - t0)) s"
  else
    row build FAIL "see $out/configure.log, $out/build.log"
    cat "$summary"
    exit 1
  fi
fi
for t in "${targets[@]}"; do
  [ -x "$build/$t" ] || [ -x "$build/tests/$t" ] || [ -x "$build/bench/kernel_lab/$t" ] || {
    row "build: $t" FAIL "missing from $build"
  }
done

# ---- 2. device test cases, one process each ----------------------------------------------------
# run_cases BINARY FILTER LABEL: each doctest case matching FILTER in its own process.
run_cases() {
  local bin=$1 filter=$2 label=$3 n=0 pass=0 skip=0 fail=0 failed="" case esc rc log
  while IFS= read -r case; do
    [ -z "$case" ] && continue
    n=$((n + 1))
    esc=$(printf '%s' "$case" | sed 's/[][*?,\\]/?/g')   # doctest filters: wildcards, commas separate
    log="$out/case_$(printf '%s' "$label" | tr -c 'a-zA-Z0-9' _ | cut -c1-24)_$(printf '%03d' "$n").log"
    timeout "$case_timeout" "$bin" --test-case="$esc" >"$log" 2>&1
    rc=$?
    if ((rc != 0)); then
      fail=$((fail + 1))
      failed="$failed; $case (exit $rc)"
      printf 'fail(exit %s)\t%s\t%s\n' "$rc" "$case" "$log" >>"$out/cases.tsv"
    elif grep -q "MOESEG_TEST_SKIPPED" "$log"; then
      skip=$((skip + 1))
      printf 'skip\t%s\t%s\n' "$case" "$log" >>"$out/cases.tsv"
    else
      pass=$((pass + 1))
      printf 'pass\t%s\t%s\n' "$case" "$log" >>"$out/cases.tsv"
    fi
  done < <("$bin" --list-test-cases --test-case="$filter" --no-version 2>/dev/null | grep -v '^\[doctest\]\|^====')
  if ((fail)); then
    row "$label" FAIL "$pass passed, $skip skipped, $fail failed${failed}"
  else
    row "$label" ok "$pass passed, $skip skipped of $n cases"
  fi
}
tests=$build/tests
device_filter='*'
((quick)) && device_filter='*planted*,*copies, strided*,*training step*,*moe dispatch on the cuda device: the ops*'
run_cases "$tests/test_device" "$device_filter" "device tests (tests/device)"
run_cases "$tests/test_core" '*CUDA*,*cuda*,*GPU*' "core CUDA cases (allocator, backend, tensor)"
((quick)) || run_cases "$tests/test_layers" '*device*,*CUDA*,*cuda*' "layer cases on the CUDA device"
for pattern in "FRRN-A, and one training step" "an MoE of two FRRN-A"; do
  status=$(grep -F "$pattern" "$out/cases.tsv" | head -1 | cut -f1)
  what="training step on the device = CPU: ${pattern%%,*}"
  case $status in
    pass) row "$what" ok "loss, clipped gradient norm and every state_dict entry after SGD" ;;
    skip) row "$what" skipped "no CUDA device" ;;
    *) row "$what" FAIL "${status:-not run}; see $out/cases.tsv" ;;
  esac
done

# ---- 3. compute-sanitizer ----------------------------------------------------------------------
if ((emulated)); then
  row compute-sanitizer skipped "emulated device: the CUDA-on-CPU checkers run instead (ctest -R sanitizer)"
elif ! command -v compute-sanitizer >/dev/null; then
  row compute-sanitizer skipped "compute-sanitizer is not on PATH"
else
  for tool in memcheck racecheck synccheck initcheck; do
    extra=()
    # No --leak-check: the caching allocator keeps its blocks to the end by design (a first run
    # reported each of them, 866 "errors", and nothing else).
    timeout "$san_timeout" compute-sanitizer --tool "$tool" "${extra[@]}" --error-exitcode 99 \
      "$tests/test_device" --test-case-exclude='*planted*' >"$out/sanitizer_$tool.log" 2>&1
    rc=$?
    errs=$(grep -oE "ERROR SUMMARY: [0-9]+ error" "$out/sanitizer_$tool.log" | tail -1)
    case $rc in
      0) row "compute-sanitizer $tool" ok "${errs:-no errors}" ;;
      124) row "compute-sanitizer $tool" FAIL "over ${san_timeout} s" ;;
      *) row "compute-sanitizer $tool" FAIL "exit $rc, ${errs:-see $out/sanitizer_$tool.log}" ;;
    esac
  done
fi

# ---- 4. kernel lab -----------------------------------------------------------------------------
lab=$build/bench/kernel_lab/kernel_lab
lab_args=(--repeats 20)
((quick || emulated)) && lab_args=(--validate)
if timeout 1200 "$lab" "${lab_args[@]}" >"$out/kernel_lab.log" 2>&1 && grep -q "all versions match" "$out/kernel_lab.log"; then
  if ((emulated)); then
    row "kernel lab" ok "every version matches the CPU backend (validation only: no GPU to time)"
  else
    row "kernel lab" ok "validated and timed against cuDNN / cuBLAS: $out/kernel_lab.log"
  fi
else
  row "kernel lab" FAIL "see $out/kernel_lab.log"
fi

# ---- 5. end-to-end training on the device ------------------------------------------------------
h=240 w=320 per=16 width=1.0
((emulated || quick)) && h=32 w=48 per=2 width=0.0625
data=$out/synthetic
if "$build/moeseg" data synth --out "$data" --height $h --width $w --train $per --val 2 --test 2 --ambiguous 2 \
     >"$out/synth.log" 2>&1 &&
   (cd "$out" && timeout 1200 "$build/moeseg" train "$root/configs/frrnA_highway.json" --device cuda \
      --set data.root="$data" --set data.height=$h --set data.width=$w --set data.preset=resize \
      --set train.epochs=1 --set train.grad_clip=1 --set model.width=$width --out "$out/train_frrn" --overwrite \
      >"$out/train.log" 2>&1); then
  speed=$(grep -oE "[0-9.]+ img/s, [0-9.]+s" "$out/train.log" | tail -1)
  row "moeseg train --device cuda (FRRN-A ${width}x, ${h}x${w})" ok "${speed:-done}; $(grep -c 'no CUDA kernel yet' "$out/train.log") op(s) fell back to the CPU"
else
  row "moeseg train --device cuda (FRRN-A ${width}x, ${h}x${w})" FAIL "see $out/train.log"
fi

# ---- summary -----------------------------------------------------------------------------------
{
  echo
  echo "gpu_check summary: $device"
  echo
  echo "| check | result | detail |"
  echo "|---|---|---|"
  cat "$summary"
  echo
  echo "gpu_check: $failures check(s) failed; logs in $out"
} | tee "$out/report.md"
((failures == 0))
