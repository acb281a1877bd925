// gate_softmax_combine (see kernels/gate_combine.h). CPU: softmax over experts, then the experts'
// logits scaled by their weight and summed in expert order (the reference's arithmetic). CUDA:
// the fused kernels, with a node that runs the fused backward.
#include "kernels/gate_combine.h"

#include <algorithm>

#include "core/autograd.h"
#include "kernels/device_fallback.h"
#include "kernels/elementwise.h"
#include "kernels/gpu_kernels.h"
#include "kernels/softmax.h"

namespace moeseg {

namespace {

struct GateCombineCudaBackward final : autograd::Node {
  autograd::SavedTensor weights;
  std::vector<Tensor> experts;   // detached, contiguous (frozen experts' outputs, no version check needed)
  std::vector<bool> need_expert;
  int B = 0, G = 0, C = 0, E = 0;
  int64_t HW = 0;
  std::vector<Tensor> backward(const Tensor& grad) override {
    Tensor w = weights.get("gate_softmax_combine"), g = grad.contiguous();
    const Device d = g.device();
    const GpuKernels& k = gpu_kernels();
    Tensor g_gate = Tensor::empty({B, G, E}, DType::Float32, d);
    std::vector<const float*> ex;
    std::vector<float*> gex;
    std::vector<Tensor> out{g_gate};
    bool any_expert = false;
    for (int e = 0; e < E; ++e) {
      ex.push_back(experts[e].data<float>());
      Tensor ge = need_expert[e] ? Tensor::empty(experts[e].sizes(), DType::Float32, d) : Tensor();
      any_expert = any_expert || ge.defined();
      out.push_back(ge);
    }
    // The kernel writes every expert's gradient or none: scratch for the ones nobody asked for.
    for (int e = 0; e < E; ++e) {
      if (!any_expert) break;
      if (!out[e + 1].defined()) out[e + 1] = Tensor::empty(experts[e].sizes(), DType::Float32, d);
      gex.push_back(out[e + 1].data<float>());
    }
    Tensor ws = gpu_workspace(k.gate_softmax_combine_backward_workspace_floats(B, C, HW, E), d);
    k.gate_softmax_combine_backward(g.data<float>(), w.data<float>(), ex.data(), g_gate.data<float>(),
                                    any_expert ? gex.data() : nullptr, ws.data<float>(), B, G, C, HW, E);
    for (int e = 0; e < E; ++e)
      if (!need_expert[e]) out[e + 1] = Tensor();
    return out;
  }
  void release() override { weights.reset(); experts.clear(); }
  std::string name() const override { return "GateSoftmaxCombineBackward"; }
};

}  // namespace

std::pair<Tensor, Tensor> gate_softmax_combine(const Tensor& gate_logits, const std::vector<Tensor>& experts) {
  const char* op = "gate_softmax_combine";
  check_defined(gate_logits, op, "gate_logits");
  MOESEG_CHECK(!experts.empty(), op, ": no experts");
  MOESEG_CHECK(gate_logits.dim() == 3 && gate_logits.size(2) == static_cast<int64_t>(experts.size()), op,
               ": gate logits ", gate_logits.str(), " must be [B, G, ", experts.size(), "] for ", experts.size(),
               " experts");
  const Tensor& first = experts[0];
  for (size_t e = 0; e < experts.size(); ++e) {
    check_defined(experts[e], op, "expert logits");
    check_same_device(gate_logits, experts[e], op);
    check_same_dtype(gate_logits, experts[e], op);
    MOESEG_CHECK(experts[e].dim() == 4 && experts[e].sizes() == first.sizes(), op, ": expert ", e + 1, " logits ",
                 experts[e].str(), " must be [B, C, H, W] like expert 1's ", first.str());
  }
  const int64_t B = first.size(0), C = first.size(1), G = gate_logits.size(1);
  MOESEG_CHECK(gate_logits.size(0) == B && (G == 1 || G == C), op, ": gate logits ", gate_logits.str(),
               " must be [", B, ", 1 or ", C, ", E] for expert logits ", first.str());
  if (on_cuda(gate_logits) && gate_logits.dtype() == DType::Float32) {
    const Device d = gate_logits.device();
    const int E = static_cast<int>(experts.size());
    const int64_t HW = first.size(2) * first.size(3);
    Tensor gl = gate_logits.detach().contiguous();
    std::vector<Tensor> ex;
    std::vector<const float*> ptrs;
    for (const Tensor& t : experts) {
      ex.push_back(t.detach().contiguous());
      ptrs.push_back(ex.back().data<float>());
    }
    Tensor out = Tensor::empty(first.sizes(), DType::Float32, d), w = Tensor::empty({B, G, E}, DType::Float32, d);
    gpu_kernels().gate_softmax_combine_forward(gl.data<float>(), ptrs.data(), out.data<float>(), w.data<float>(),
                                               static_cast<int>(B), static_cast<int>(G), static_cast<int>(C), HW, E);
    std::vector<Tensor> inputs{gate_logits};
    for (const Tensor& t : experts) inputs.push_back(t);
    if (autograd::needs_grad(inputs)) {
      auto n = std::make_shared<GateCombineCudaBackward>();
      n->weights = autograd::SavedTensor(w);
      n->experts = ex;
      for (const Tensor& t : experts) n->need_expert.push_back(t.requires_grad());
      n->B = static_cast<int>(B), n->G = static_cast<int>(G), n->C = static_cast<int>(C), n->E = E, n->HW = HW;
      autograd::connect(n, inputs, out);
    }
    return {out, w};
  }
  if (on_cuda(gate_logits)) note_cpu_fallback(op, "float64");
  Tensor w = softmax(gate_logits, 2);
  Tensor sum;
  for (size_t e = 0; e < experts.size(); ++e) {
    Tensor we = w.select(2, static_cast<int64_t>(e)).reshape({B, G, 1, 1});
    Tensor term = mul(experts[e], we);
    sum = sum.defined() ? add(sum, term) : term;
  }
  return {sum, w};
}

}  // namespace moeseg
