// Shared by the fuzz harnesses (tests/fuzz/fuzz_*.cpp): runs one input and lets only
// moeseg::Error through, the clean refusal every reader owes a bad file. Any other exception
// (a nlohmann::json type error, std::out_of_range, std::bad_alloc from an unchecked size) is a
// finding: it escapes LLVMFuzzerTestOneInput and libFuzzer reports it as a crash, like the
// sanitizers' reports.
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include <unistd.h>

#include "core/error.h"

namespace moeseg::fuzz {

template <typename F>
int refuse_cleanly(F&& f) {
  try {
    f();
  } catch (const moeseg::Error&) {
  }
  return 0;
}

inline std::string bytes_of(const uint8_t* data, size_t size) { return std::string(reinterpret_cast<const char*>(data), size); }

// A private folder for harnesses that read files, removed when the fuzzer exits (libFuzzer ends
// with exit(), which runs static destructors; a crash leaves it behind in the temp folder).
inline std::filesystem::path scratch_dir(const std::string& tag) {
  struct Remover {
    std::filesystem::path p;
    ~Remover() {
      std::error_code ec;
      std::filesystem::remove_all(p, ec);
    }
  };
  auto p = std::filesystem::temp_directory_path() / ("moeseg_fuzz_" + tag + "_" + std::to_string(::getpid()));
  std::filesystem::create_directories(p);
  static std::vector<Remover> removers;
  removers.push_back({p});
  return p;
}

}  // namespace moeseg::fuzz
