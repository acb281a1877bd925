// Where a tensor lives. One flag switches a model between devices; nothing above kernels/
// branches on the device except to pass it on.
#pragma once
#include <string>

#include "core/error.h"

namespace moeseg {

enum class DeviceType : uint8_t { CPU, CUDA };

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;

  bool is_cpu() const { return type == DeviceType::CPU; }
  bool is_cuda() const { return type == DeviceType::CUDA; }
  bool operator==(const Device& o) const { return type == o.type && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
  std::string str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }

  // Parses "cpu", "cuda", "cuda:1".
  static Device parse(const std::string& s) {
    if (s == "cpu") return {};
    if (s == "cuda") return {DeviceType::CUDA, 0};
    if (s.rfind("cuda:", 0) == 0) return {DeviceType::CUDA, std::stoi(s.substr(5))};
    MOESEG_FAIL("device: unknown device '", s, "' (expected cpu, cuda or cuda:N)");
  }
};


}  // namespace moeseg
