// `moeseg data ...`: dataset tools (for now: writing the synthetic A2D2-format scenes).
#pragma once

namespace moeseg::cli {
int run_data(int argc, char** argv);
}  // namespace moeseg::cli
