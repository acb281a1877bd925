#!/usr/bin/env bash
# The main job (README's first command): set up, build, generate the synthetic driving scenes and
# run the reference experiment end to end (highway and urban experts, baseline, both ensembles,
# the four MoE gates), printing the mIoU table and writing runs/reproduce/report.html.
# Extra arguments go to `moeseg reproduce` (e.g. --preset NAME, --dataset camvid).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
./build/moeseg reproduce --out runs/reproduce "$@"
