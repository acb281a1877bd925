// `moeseg ops`: prints the op table (name, header, differentiable, backends).
#include <cstdio>

#include "kernels/op_table.h"
#include "tools/commands.h"

namespace moeseg::cli {

int run_ops(int, char**) {
  std::printf("%-22s %-18s %-6s %s\n", "op", "header", "grad", "backends");
  for (auto& op : op_table())
    std::printf("%-22s %-18s %-6s %s\n", op.name.c_str(), op.header.c_str(), op.differentiable ? "yes" : "no",
                op.backends.c_str());
  std::printf("ops: %zu\n", op_table().size());
  return 0;
}

}  // namespace moeseg::cli
