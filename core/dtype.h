// Element types of a tensor and the compile-time dispatch from a runtime dtype to a C++ type.
// float32 is the compute type; float64 exists on the CPU for gradient checks; int32/int64/uint8
// hold labels and indices; float16/bfloat16 are storage types (declared now, no compute yet).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"

namespace moeseg {

enum class DType : uint8_t { Float32, Float64, Int32, Int64, UInt8, Float16, BFloat16 };

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::Float32: return 4;
    case DType::Float64: return 8;
    case DType::Int32: return 4;
    case DType::Int64: return 8;
    case DType::UInt8: return 1;
    case DType::Float16: return 2;
    case DType::BFloat16: return 2;
  }
  return 0;
}

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::Int32: return "int32";
    case DType::Int64: return "int64";
    case DType::UInt8: return "uint8";
    case DType::Float16: return "float16";
    case DType::BFloat16: return "bfloat16";
  }
  return "?";
}

inline bool is_floating(DType t) {
  return t == DType::Float32 || t == DType::Float64 || t == DType::Float16 || t == DType::BFloat16;
}

template <typename T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::Float32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::Float64; };
template <> struct dtype_of<int32_t> { static constexpr DType value = DType::Int32; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::Int64; };
template <> struct dtype_of<uint8_t> { static constexpr DType value = DType::UInt8; };

template <typename T> struct type_tag { using type = T; };

// Calls fn(type_tag<T>{}) for the compute float types; other dtypes throw naming the op.
template <typename Fn>
decltype(auto) dispatch_float(DType t, const char* op, Fn&& fn) {
  switch (t) {
    case DType::Float32: return fn(type_tag<float>{});
    case DType::Float64: return fn(type_tag<double>{});
    default: MOESEG_FAIL(op, ": dtype ", dtype_name(t), " is not supported (float32 or float64 expected)");
  }
}

// Calls fn(type_tag<T>{}) for every dtype that has arithmetic on the CPU.
template <typename Fn>
decltype(auto) dispatch_all(DType t, const char* op, Fn&& fn) {
  switch (t) {
    case DType::Float32: return fn(type_tag<float>{});
    case DType::Float64: return fn(type_tag<double>{});
    case DType::Int32: return fn(type_tag<int32_t>{});
    case DType::Int64: return fn(type_tag<int64_t>{});
    case DType::UInt8: return fn(type_tag<uint8_t>{});
    default: MOESEG_FAIL(op, ": dtype ", dtype_name(t), " has no arithmetic yet (storage only)");
  }
}

}  // namespace moeseg
