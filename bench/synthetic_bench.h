// synthetic_bench.h — `moeseg bench synthetic`: throughput of the synthetic scene generator
// (data/synthetic_scenes.h) at 240x320: the whole generator (render + PNG encode + write) in
// images/s and MB/s written, next to a plain file write of the same bytes measured in the same
// run (the disk ceiling), and the renderer alone; with the OpenMP thread count.
// Options: --images N (140) --height H (240) --width W (320) --reps R (3) --threads N
//          --out DIR (scratch folder, default a fresh one under the system temp folder)
#pragma once

int moeseg_bench_synthetic(int argc, char** argv);
