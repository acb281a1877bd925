// Entry points of the CLI subcommands, one .cpp per subcommand in tools/.
#pragma once

namespace moeseg::cli {
int run_bench(int argc, char** argv);
int run_ops(int argc, char** argv);
int run_attack(int argc, char** argv);   // tools/cmd_attack.cpp
int run_uncertainty(int argc, char** argv);   // tools/cmd_uncertainty.cpp
}  // namespace moeseg::cli
