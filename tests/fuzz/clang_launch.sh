#!/usr/bin/env bash
# The compile and link launcher of the fuzz targets (tests/fuzz/CMakeLists.txt). CMake calls
#   clang_launch.sh <compile|link> <clang++> <the command line it made for the C++ compiler...>
# and this runs that command line with clang++ instead, adding libFuzzer + ASan + UBSan. So the
# fuzz targets get the project's include paths, definitions and full link line (moeseg_lib built
# by g++, OpenBLAS, libgomp, CUDA when present) from CMake, while only their own sources (the
# harness and the parsers it fuzzes) are compiled by clang with coverage and sanitizers. Mixing
# is safe: both compilers use libstdc++, ASan's runtime replaces malloc for the whole process.
set -euo pipefail
mode=$1
clang=$2
shift 3   # mode, clang++, and the compiler CMake chose
args=()
for a in "$@"; do
  case "$a" in
    -fopenmp) ;;   # the parsers use no OpenMP; the link line names libgomp.so itself
    *) args+=("$a") ;;
  esac
done
here=$(cd "$(dirname "$0")" && pwd)
san=(-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
     -fsanitize-ignorelist="$here/ubsan_ignore.txt")
if [ "$mode" = compile ]; then
  exec "$clang" "${args[@]}" "${san[@]}" -O1 -g -Wno-unknown-pragmas
else
  exec "$clang" "${args[@]}" "${san[@]}"
fi
