#!/usr/bin/env bash
# Installs what moeseg needs to build and test, from Debian's packages. Idempotent: packages that
# are already installed are not fetched again, and apt-get runs only when something is missing.
# CUDA (nvcc, cuBLAS, cuDNN) is optional and not installed here; the build detects it.
set -euo pipefail
# clang + libclang-rt-14-dev: the libFuzzer / ASan / UBSan runtimes of the fuzz targets (tests/fuzz),
# which scripts/test.sh builds and runs like every other test.
packages=(cmake g++ make libopenblas-dev nlohmann-json3-dev doctest-dev libstb-dev clang libclang-rt-14-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "setup: dependencies present (${packages[*]})"
