// Entry point of `moeseg predict` (tools/cmd_predict.cpp): a trained model's predictions on
// image files or dataset images, written as PNG pictures (see its --help).
#pragma once

namespace moeseg::cli {
int run_predict(int argc, char** argv);
}  // namespace moeseg::cli
