#!/usr/bin/env bash
# The main job (README's first command): set up, build, and train on the default data.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
./build/moeseg train-demo "$@"
