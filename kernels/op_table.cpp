// The list behind op_table(). Add a line here when adding an op; the coverage test fails until
// the op has its gradient and PyTorch tests.
#include "kernels/op_table.h"

namespace moeseg {

const std::vector<OpInfo>& op_table() {
  static const std::vector<OpInfo> ops = {
      {"add", "elementwise.h", true, "cpu,cuda(same shapes; broadcast: cpu fallback)"},
      {"sub", "elementwise.h", true, "cpu,cuda(cpu fallback)"},
      {"mul", "elementwise.h", true, "cpu,cuda(same shapes; broadcast: cpu fallback)"},
      {"div", "elementwise.h", true, "cpu,cuda(cpu fallback)"},
      {"scale", "elementwise.h", true, "cpu,cuda(cpu fallback)"},
      {"relu", "elementwise.h", true, "cpu,cuda"},
      {"exp", "elementwise.h", true, "cpu,cuda(cpu fallback)"},
      {"log", "elementwise.h", true, "cpu,cuda(cpu fallback)"},
      {"tanh", "elementwise.h", true, "cpu,cuda(cpu fallback)"},
      {"sigmoid", "elementwise.h", true, "cpu,cuda(cpu fallback)"},
      {"sign", "elementwise.h", true, "cpu,cuda(cpu fallback)"},
      {"clamp", "elementwise.h", true, "cpu,cuda(cpu fallback)"},
      {"normal_cdf", "elementwise.h", true, "cpu,cuda(cpu fallback)"},
      {"sum", "reduce.h", true, "cpu,cuda(full sum; over dims: cpu fallback)"},
      {"mean", "reduce.h", true, "cpu,cuda(cpu fallback)"},
      {"max", "reduce.h", true, "cpu,cuda(cpu fallback)"},
      {"argmax", "reduce.h", false, "cpu,cuda"},
      {"topk", "reduce.h", true, "cpu,cuda(last dim)"},
      {"slice", "core/tensor.h", true, "cpu"},
      {"reshape", "core/tensor.h", true, "cpu"},
      {"permute", "core/tensor.h", true, "cpu"},
      {"expand", "core/tensor.h", true, "cpu"},
      {"concat", "shape_ops.h", true, "cpu,cuda"},
      {"split", "shape_ops.h", true, "cpu,cuda"},
      {"matmul", "linear.h", true, "cpu,cuda(cpu fallback)"},
      {"linear", "linear.h", true, "cpu,cuda"},
      {"softmax", "softmax.h", true, "cpu,cuda(cpu fallback)"},
      {"log_softmax", "softmax.h", true, "cpu,cuda(cpu fallback)"},
      {"cross_entropy", "cross_entropy.h", true, "cpu,cuda"},
      {"dropout", "dropout.h", true, "cpu,cuda(cpu fallback)"},
      {"conv2d", "conv2d.h", true, "cpu,cuda"},
      {"batch_norm2d", "batch_norm.h", true, "cpu,cuda"},
      {"max_pool2d", "pooling.h", true, "cpu,cuda"},
      {"avg_pool2d", "pooling.h", true, "cpu,cuda"},
      {"adaptive_avg_pool2d", "pooling.h", true, "cpu,cuda"},
      {"upsample_bilinear2d", "upsample.h", true, "cpu,cuda"},
      {"upsample_nearest2d", "upsample.h", true, "cpu,cuda"},
      {"frru_pool_concat", "frru.h", true, "cpu,cuda"},
      {"frru_conv1x1_upsample_add", "frru.h", true, "cpu,cuda"},
      {"gate_softmax_combine", "gate_combine.h", true, "cpu,cuda"},
      {"moe_permute", "moe_dispatch.h", true, "cpu,cuda"},
      {"moe_unpermute_combine", "moe_dispatch.h", true, "cpu,cuda"},
      {"moe_grouped_linear", "moe_dispatch.h", true, "cpu,cuda"},
  };
  return ops;
}

const OpInfo* find_op(const std::string& name) {
  for (auto& op : op_table())
    if (op.name == name) return &op;
  return nullptr;
}

}  // namespace moeseg
