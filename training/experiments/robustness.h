// The robustness study of `moeseg reproduce --study robustness --from RUN` (spec §1.10), driven by
// configs/studies/robustness.json: the nine models of a finished model_level_moe run (seed 0's
// models when that run has several seeds), each evaluated on highway + urban clean, under FGSM,
// PGD-k (the reference variant) and its own universal δ (made on the model's training split), then
// the transfer matrix of universal δs between the models the preset lists. Prints the table
// `| Model | clean | FGSM | PGD-10 | universal |` and the matrix, writes <out>/results.json,
// <out>/report.html and every δ as <out>/deltas/<model>.safetensors (+ .png).
#pragma once
#include "training/experiments/study.h"

namespace moeseg {

int run_robustness_study(const StudyOptions& opt);

}  // namespace moeseg
