// Our own PNG encoders, for where stb_image_write's general deflate costs more than it gains:
// "stored" (no compression: noisy camera images) and "fast" (run-length matches only: flat,
// colour-coded label images). Both write 8-bit gray / RGB / RGBA, filter 0 on every row.
#pragma once
#include <cstdint>
#include <vector>

#include "data/image_io.h"

namespace moeseg::data {

// `fast` = fixed-Huffman deflate with matches at distance one pixel and one row; else stored.
std::vector<uint8_t> encode_png_own(const Image& img, bool fast);

}  // namespace moeseg::data
