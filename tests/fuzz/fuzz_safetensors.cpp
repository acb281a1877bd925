// Fuzzes the safetensors reader (core/safetensors.h parse_safetensors, the body of
// load_safetensors): header length, header JSON and its types, dtypes, shapes whose size
// overflows, data offsets out of bounds, overlapping or leaving holes.
// Built and run by tests/fuzz/CMakeLists.txt (ctest -R fuzz/safetensors).
#include <cstring>

#include "core/safetensors.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return moeseg::fuzz::refuse_cleanly([&] {
    moeseg::TensorFile f = moeseg::parse_safetensors(moeseg::fuzz::bytes_of(data, size), "fuzz.safetensors");
    // What was accepted must be consistent: every tensor's bytes lie inside the input.
    size_t total = 0;
    for (auto& [name, t] : f.tensors) total += static_cast<size_t>(t.numel()) * moeseg::dtype_size(t.dtype());
    if (total > size) __builtin_trap();
  });
}
