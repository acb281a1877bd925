// Fuzzes the image decoders (data/image_io.h decode_image, the body of read_image): format
// sniffing and the extension check, the PNG chunk walk with its CRC-32 and Adler-32 checks, the
// JPEG / BMP / PNM structure checks, and stb_image's PNG, JPEG, BMP and PNM decoders behind
// them (compiled here with the sanitizers, as part of data/image_io.cpp).
// Input: byte 0 picks the file name (and so the extension checked against the content), byte 1
// the channels asked for (0, 1 or 3), the rest is the file. The pixel budget is lowered to 2^20
// so that a declared size cannot exhaust memory within the fuzzer's limit.
// Built and run by tests/fuzz/CMakeLists.txt (ctest -R fuzz/image).
#include "data/image_io.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  moeseg::data::set_max_image_pixels(int64_t{1} << 20);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  static const char* names[] = {"f.png", "f.jpg", "f.jpeg", "f.bmp", "f.ppm", "f.pgm", "f.pnm", "f", "f.gif", "f.dat"};
  const std::string name = names[data[0] % (sizeof names / sizeof names[0])];
  const int channels = data[1] % 3 == 0 ? 0 : data[1] % 3 == 1 ? 1 : 3;
  const std::vector<uint8_t> bytes(data + 2, data + size);
  return moeseg::fuzz::refuse_cleanly([&] {
    const moeseg::data::Image img = moeseg::data::decode_image(bytes, name, channels);
    if (img.width < 1 || img.height < 1 || img.channels < 1 || img.channels > 4 ||
        img.pixels.size() != static_cast<size_t>(img.width) * img.height * img.channels ||
        static_cast<int64_t>(img.width) * img.height > moeseg::data::max_image_pixels())
      __builtin_trap();
  });
}
