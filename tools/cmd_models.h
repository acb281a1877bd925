// Entry points of `moeseg model` (tools/cmd_model.cpp) and `moeseg infer` (tools/cmd_infer.cpp).
#pragma once

namespace moeseg::cli {
// moeseg model summary (--model NAME --classes N [--width-mult M] | --config FILE) [--height H --width W]
// moeseg model trace   (same model choice) (--image PATH | --synthetic highway|urban|ambiguous) [--weights W]
int run_model(int argc, char** argv);
// moeseg infer (--model NAME --classes N [--width-mult M] | --config FILE) --weights W.safetensors
//              --input X.safetensors|X.npy --out Y.safetensors [--device cpu|cuda]
int run_infer(int argc, char** argv);
}  // namespace moeseg::cli
