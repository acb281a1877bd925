// model_bench.h — `moeseg bench frrn`: FRRN-A forward and forward+backward on the CPU in moeseg
// and, when python3 can import torch, in PyTorch in the same run (bench/frrn_torch_bench.py with
// the same thread count), with the time ratio and the peak memory of each.
// Options: --batch B (2) --height H (240) --width W (320) --classes C (38) --reps R (3)
//          --threads N --width-mult M (1.0) --no-torch
#pragma once

int moeseg_bench_model(int argc, char** argv);
