#!/usr/bin/env bash
# Configures and builds moeseg (Release) into ./build with both cores. Extra arguments go to cmake,
# e.g. scripts/build.sh -DMOESEG_CUDA=OFF
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build build -j2 2>&1 | grep -E "error|warning: unused|Error" || true
test -x build/moeseg || { echo "build failed: run cmake --build build to see why" >&2; exit 1; }
