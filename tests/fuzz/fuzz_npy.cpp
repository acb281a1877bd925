// Fuzzes the .npy reader (core/npy.h parse_npy, the body of load_npy): magic and version,
// header length, the dict's descr / fortran_order / shape entries, dimensions that overflow,
// truncated and trailing data.
// Built and run by tests/fuzz/CMakeLists.txt (ctest -R fuzz/npy).
#include "core/npy.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return moeseg::fuzz::refuse_cleanly([&] {
    moeseg::Tensor t = moeseg::parse_npy(moeseg::fuzz::bytes_of(data, size), "fuzz.npy");
    if (static_cast<size_t>(t.numel()) * moeseg::dtype_size(t.dtype()) > size) __builtin_trap();
  });
}
