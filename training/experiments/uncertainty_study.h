// The uncertainty study of `moeseg reproduce --study uncertainty --from RUN` (spec §1.11), driven by
// configs/studies/uncertainty.json: rows = measure × member set of the run's MoEs (plain, gate-
// weighted, stacked with the MoE output), the ensemble and MC-dropout of a single model; each
// condition of the preset (clean test images of highway + urban, the same under every corruption
// at severity 3 averaged, the OOD "ambiguous" subset) printed as `condition: NAME` and a table
// `| Measure | Members | ECE | MCE | Brier | NLL | AUROC | PAvPU |` (training/uncertainty_evaluation.h
// says what each column is). Writes <out>/results.json, <out>/report.html and the pictures of
// the clean and OOD conditions (reliability diagrams, uncertainty maps) in <out>/pictures/<cond>/.
#pragma once
#include "training/experiments/study.h"

namespace moeseg {

int run_uncertainty_study(const StudyOptions& opt);

}  // namespace moeseg
