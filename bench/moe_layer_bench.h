// moe_layer_bench.h — `moeseg bench moe-layer` (issue 12): forward + backward of a ConvMoE layer
// (one token per image) and a PatchMoE layer (P×P patch tokens), 3x3 conv experts, at each N and
// k, against the dense layer with the same per-expert shape and the naive all-experts-masked
// implementation, in the same run. One line per kind, N and k with `N=<n> k=<k>`,
// `sparse/dense <r>x` and `masked/sparse <r>x`. FLOP counts and predictions: moe_layer_bench.cpp.
// Options: --batch B (8) --channels C (64) --height H (32) --width W (32) --patch P (8)
//          --experts N1,N2,.. (4,8,16) --k K1,K2,.. (1,2) --reps R (5) --threads T
#pragma once

int moeseg_bench_moe_layer(int argc, char** argv);
