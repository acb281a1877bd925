// The study registry of `moeseg reproduce --study NAME` (training/experiments/study.h).
#include "training/experiments/study.h"

#include "core/error.h"
#include "training/experiments/model_level_moe.h"
#include "training/experiments/robustness.h"
#include "training/experiments/sparse_moe_study.h"
#include "training/experiments/uncertainty_study.h"

namespace moeseg {

std::vector<std::pair<std::string, std::string>> known_studies() {
  return {{"model_level_moe",
           "FRRN-A experts, baseline, ensembles and four MoE gates, mIoU per test subset (spec §1.5-1.9)"},
          {"robustness",
           "the nine models of a finished run (--from RUN) clean, under FGSM, PGD-10 and a universal delta, and the "
           "transfer matrix (spec §1.10)"},
          {"uncertainty",
           "uncertainty measures (PE, MI, EV, gate entropy) of the MoEs' member sets, the ensemble and MC-dropout of a "
           "finished run (--from RUN): ECE, MCE, Brier, NLL, AUROC, PAvPU clean, corrupted and OOD (spec §1.11)"},
          {"sparse-moe",
           "DeepLabv3+ dense vs ConvMoE / BlockMoE / PatchMoE layers in layer4 (N, k, balancing): mIoU, expert usage, "
           "cost and the experts' specialisation (spec §5)"}};
}

int run_study(const StudyOptions& opt) {
  if (opt.study == "model_level_moe") return run_model_level_moe(opt);
  if (opt.study == "robustness") return run_robustness_study(opt);
  if (opt.study == "uncertainty") return run_uncertainty_study(opt);
  if (opt.study == "sparse-moe") return run_sparse_moe_study(opt);
  std::string names;
  for (auto& [n, d] : known_studies()) names += (names.empty() ? "" : ", ") + n;
  MOESEG_FAIL("reproduce: unknown study '", opt.study, "' (known: ", names, ")");
}

}  // namespace moeseg
