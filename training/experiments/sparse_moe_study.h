// The sparse-MoE study of `moeseg reproduce --study sparse-moe` (issue 12; reference-systems §5):
// a DeepLabv3+ (ResNet-18, output stride 16) trained dense and with sparse MoE layers inserted
// into layer4 by name (models/moe_insertion.h): ConvMoE (every conv of layer4, one token per
// image), BlockMoE (every BasicBlock of layer4) and PatchMoE (every conv of layer4, one token per
// P x P patch of the feature map), at the preset's N, k and with or without the balancing loss.
// Driven by configs/studies/sparse-moe.json: presets (data, size, epochs, the list of variants)
// and the template (the kinds, the router, the noise, the balancing weights, data and train).
// Each model is trained once (a finished run is skipped, an interrupted one resumed), then
// evaluated (training/sparse_moe_evaluation.h) and printed as
//   | Model | mIoU | usage entropy | usage CV | params (M) | GFLOPs | ms/img |   (first row Dense;
//   mIoU on highway + urban / day + dusk),
// the mIoU per test subset, and the specialisation table of each MoE model's last MoE layer
// (per expert: the share of each domain's and of each frequent class's tokens it gets as top-1).
// Writes <out>/results.json, <out>/report.html (the tables and the routing pictures) and
// <out>/pictures/.
#pragma once
#include "training/experiments/study.h"

namespace moeseg {

int run_sparse_moe_study(const StudyOptions& opt);

}  // namespace moeseg
