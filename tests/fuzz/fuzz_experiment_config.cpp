// Fuzzes the experiment-config reader (training/experiment_config.h): the input is the config's
// JSON text, optionally followed by a NUL byte and one `--set key.path=value` override, which is
// applied first as load_experiment_config does. Keys, types, integer ranges, overrides.
// Built and run by tests/fuzz/CMakeLists.txt (ctest -R fuzz/experiment_config).
#include <cstring>

#include "fuzz_common.h"
#include "training/experiment_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string in = moeseg::fuzz::bytes_of(data, size);
  const size_t nul = in.find('\0');
  nlohmann::json j = nlohmann::json::parse(in.substr(0, nul), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return 0;   // not JSON: load_experiment_config reports the parser's error
  return moeseg::fuzz::refuse_cleanly([&] {
    if (nul != std::string::npos) moeseg::apply_override(j, in.substr(nul + 1));
    moeseg::ExperimentConfig c = moeseg::parse_experiment_config(j, "fuzz.json", "/nonexistent/base");
    (void)moeseg::config_hash(c);
  });
}
