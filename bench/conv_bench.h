// conv_bench.h — `moeseg bench conv`: times the CPU conv2d kernels (kernels/conv2d_cpu.h) at the
// FRRN-A 3x3 shapes against the OpenBLAS sgemm ceiling measured in the same run.
// Options: --quick (short run), --threads N, --tile-bytes B and --min-width PIXELS
// (im2col tile size sweep).
#pragma once

int moeseg_bench_conv(int argc, char** argv);
