// The list behind op_table(). Add a line here when adding an op; the coverage test fails until
// the op has its gradient and PyTorch tests.
#include "kernels/op_table.h"

namespace moeseg {

const std::vector<OpInfo>& op_table() {
  static const std::vector<OpInfo> ops = {
      {"add", "elementwise.h", true, "cpu"},
      {"sub", "elementwise.h", true, "cpu"},
      {"mul", "elementwise.h", true, "cpu"},
      {"div", "elementwise.h", true, "cpu"},
      {"scale", "elementwise.h", true, "cpu"},
      {"relu", "elementwise.h", true, "cpu"},
      {"exp", "elementwise.h", true, "cpu"},
      {"log", "elementwise.h", true, "cpu"},
      {"tanh", "elementwise.h", true, "cpu"},
      {"sigmoid", "elementwise.h", true, "cpu"},
      {"sign", "elementwise.h", true, "cpu"},
      {"clamp", "elementwise.h", true, "cpu"},
      {"sum", "reduce.h", true, "cpu"},
      {"mean", "reduce.h", true, "cpu"},
      {"max", "reduce.h", true, "cpu"},
      {"argmax", "reduce.h", false, "cpu"},
      {"topk", "reduce.h", true, "cpu"},
      {"slice", "core/tensor.h", true, "cpu"},
      {"reshape", "core/tensor.h", true, "cpu"},
      {"permute", "core/tensor.h", true, "cpu"},
      {"expand", "core/tensor.h", true, "cpu"},
      {"concat", "shape_ops.h", true, "cpu"},
      {"split", "shape_ops.h", true, "cpu"},
      {"matmul", "linear.h", true, "cpu"},
      {"linear", "linear.h", true, "cpu"},
      {"softmax", "softmax.h", true, "cpu"},
      {"log_softmax", "softmax.h", true, "cpu"},
      {"cross_entropy", "cross_entropy.h", true, "cpu"},
      {"dropout", "dropout.h", true, "cpu"},
      {"conv2d", "conv2d.h", true, "cpu"},
      {"batch_norm2d", "batch_norm.h", true, "cpu"},
      {"max_pool2d", "pooling.h", true, "cpu"},
      {"avg_pool2d", "pooling.h", true, "cpu"},
      {"adaptive_avg_pool2d", "pooling.h", true, "cpu"},
      {"upsample_bilinear2d", "upsample.h", true, "cpu"},
      {"upsample_nearest2d", "upsample.h", true, "cpu"},
      {"frru_pool_concat", "frru.h", true, "cpu"},
      {"frru_conv1x1_upsample_add", "frru.h", true, "cpu"},
  };
  return ops;
}

const OpInfo* find_op(const std::string& name) {
  for (auto& op : op_table())
    if (op.name == name) return &op;
  return nullptr;
}

}  // namespace moeseg
