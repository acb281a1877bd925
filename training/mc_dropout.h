// Monte-Carlo dropout (Gal & Ghahramani 2016; the reference's MC-dropout baseline of §1.11 in
// spec/reference-systems.md): S forward passes of one model in eval mode (BatchNorm on its running
// statistics) with every Dropout layer kept active at rate p, each pass one "member" of the
// uncertainty measures (training/uncertainty.h). DeepLabv3+ has its ASPP projection dropout; FRRN
// has the out_dropout before its classifier (models/frrn.h). The masks come from a Philox
// generator of their own seeded by `seed`, so the samples are the same on every run, whatever the
// global generator did before; the layers' own rates and generators are untouched afterwards.
// Tested by tests/training/test_mc_dropout.cpp.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "core/rng.h"
#include "layers/activation_layers.h"
#include "models/segmentation_model.h"

namespace moeseg {

// While alive, every Dropout of `model` drops with rate p in eval mode too. Throws naming the
// model when it has no Dropout layer or p is outside [0, 1).
class MonteCarloDropout {
 public:
  MonteCarloDropout(SegmentationModel& model, double p, uint64_t seed);
  ~MonteCarloDropout();
  MonteCarloDropout(const MonteCarloDropout&) = delete;
  MonteCarloDropout& operator=(const MonteCarloDropout&) = delete;
  size_t layers() const { return layers_.size(); }

 private:
  std::vector<std::shared_ptr<Dropout>> layers_;
  Generator gen_;
};

// `samples` (>= 1) stochastic eval-mode passes over x without autograd: logits = the first pass,
// member_logits = all passes (so members_from_output(out, MemberSet::Plain) gives the samples).
ModelOutput mc_dropout_output(SegmentationModel& model, const Tensor& x, double p, int samples, uint64_t seed);

}  // namespace moeseg
