// The CUDA backend's foundation: the error-check macro template (on any host, with a fake status
// type), the MOESEG_CUDA_SYNC debug switch, the GPU-less fallbacks (resolve_device prints one line
// and returns the CPU; allocator_for(cuda) throws a clear Error), and — only in CUDA builds on a
// machine with a usable GPU — a CPU -> CUDA -> CPU tensor round trip and the real CUDA_CHECK.
// Run: ctest --test-dir build -R core/ (or build/tests/test_core -tc='*cuda*').
#include <doctest/doctest.h>

#include "support/capture_stderr.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <unistd.h>

#include "core/allocator.h"
#include "core/cuda_check.h"
#include "core/cuda_emulation.h"
#include "core/device_probe.h"
#include "core/tensor.h"
#include "support/skip.h"
#ifdef MOESEG_WITH_CUDA
#include "core/cuda_backend.h"
#endif

using namespace moeseg;
using moeseg::testing::capture_stderr;

namespace {

// A stand-in for cudaError_t / cublasStatus_t: an enum class (no implicit int conversion) so the
// template is checked on the strictest kind of status type.
enum class FakeStatus : int { Ok = 0, OutOfCheese = 7 };
int g_text_calls = 0;
std::string fake_status_text(FakeStatus s) {
  ++g_text_calls;
  return s == FakeStatus::Ok ? "fakeOk: fine" : "fakeOutOfCheese: the cheese ran out";
}
#define FAKE_CHECK(expr) MOESEG_API_CHECK(expr, FakeStatus::Ok, fake_status_text, "FakeAPI")

int g_calls = 0;
FakeStatus fake_call(FakeStatus result) {
  ++g_calls;
  return result;
}

std::string message_of(FakeStatus result) {
  try {
    FAKE_CHECK(fake_call(result));
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}


}  // namespace

TEST_CASE("api check macro: success is silent and evaluates the expression once") {
  g_calls = 0;
  g_text_calls = 0;
  CHECK_NOTHROW(FAKE_CHECK(fake_call(FakeStatus::Ok)));
  CHECK(g_calls == 1);
  CHECK(g_text_calls == 0);  // the status text is built only on failure
}

TEST_CASE("api check macro: failure throws moeseg::Error with api, expression, status, file and line") {
  g_calls = 0;
  const int line_before = __LINE__;
  const std::string msg = message_of(FakeStatus::OutOfCheese);
  CHECK(g_calls == 1);
  REQUIRE(!msg.empty());
  CHECK(msg.find("FakeAPI error") != std::string::npos);
  CHECK(msg.find("fake_call(result)") != std::string::npos);  // the expression text, as written
  CHECK(msg.find("returned 7") != std::string::npos);          // the numeric status
  CHECK(msg.find("fakeOutOfCheese: the cheese ran out") != std::string::npos);
  CHECK(msg.find("test_cuda_backend.cpp:") != std::string::npos);
  // The line is that of the FAKE_CHECK inside message_of, which comes before this test case.
  const size_t colon = msg.rfind(':');
  REQUIRE(colon != std::string::npos);
  const int line = std::atoi(msg.c_str() + colon + 1);
  CHECK(line > 0);
  CHECK(line < line_before);
  CHECK_THROWS_AS(FAKE_CHECK(FakeStatus::OutOfCheese), Error);
}

TEST_CASE("MOESEG_CUDA_SYNC and set_cuda_sync_debug switch the launch synchronise") {
  const char* old = std::getenv("MOESEG_CUDA_SYNC");
  const std::string saved = old ? old : "";
  setenv("MOESEG_CUDA_SYNC", "1", 1);
  detail::reset_cuda_sync_debug_from_env();
  CHECK(cuda_sync_debug());
  setenv("MOESEG_CUDA_SYNC", "0", 1);
  detail::reset_cuda_sync_debug_from_env();
  CHECK_FALSE(cuda_sync_debug());
  unsetenv("MOESEG_CUDA_SYNC");
  detail::reset_cuda_sync_debug_from_env();
  CHECK_FALSE(cuda_sync_debug());
  set_cuda_sync_debug(true);
  CHECK(cuda_sync_debug());
  set_cuda_sync_debug(false);
  CHECK_FALSE(cuda_sync_debug());
  if (old) setenv("MOESEG_CUDA_SYNC", saved.c_str(), 1);
  detail::reset_cuda_sync_debug_from_env();
}

TEST_CASE("without a usable GPU, resolve_device(cuda) returns the CPU with one line on stderr") {
  if (cuda_usable()) {
    moeseg::testing::skip("a GPU is usable: resolve_device(cuda) returns it (test_allocator.cpp checks that)");
    return;
  }
  if (cuda_emulated()) {
    // What cuda resolves to then is checked in test_allocator.cpp, the notice in tests/device/.
    // (No check before a skip: ctest reports a case that prints the skip line as skipped, even failed.)
    moeseg::testing::skip("CUDA is emulated (MOESEG_CUDA_EMULATE): cuda resolves to the emulated device, not the CPU");
    return;
  }
  Device d{DeviceType::CUDA, 3};
  const std::string err = capture_stderr([&] { d = resolve_device("cuda"); });
  CHECK(d.is_cpu());
  CHECK(err.find("cuda") != std::string::npos);
  CHECK(err.find("CPU") != std::string::npos);
  // Exactly one line: one newline, at the end.
  REQUIRE(!err.empty());
  CHECK(err.find('\n') == err.size() - 1);
}

TEST_CASE("without a registered CUDA backend, allocator_for(cuda) throws a clear Error") {
  if (device_available(DeviceType::CUDA)) {
    moeseg::testing::skip(cuda_emulated() ? "CUDA is emulated (MOESEG_CUDA_EMULATE): a CUDA backend is registered"
                                          : "a GPU is usable: its CUDA backend is registered");
    return;
  }
  CHECK_FALSE(cuda_usable());   // registration happens exactly when usable
  CHECK_FALSE(cuda_emulated());
  try {
    allocator_for(Device{DeviceType::CUDA, 0});
    FAIL("allocator_for(cuda:0) did not throw");
  } catch (const Error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("cuda:0") != std::string::npos);
    CHECK(msg.find("not available") != std::string::npos);
  }
  CHECK_THROWS_AS(Tensor::zeros({2, 3}, DType::Float32, Device{DeviceType::CUDA, 0}), Error);
}

#ifdef MOESEG_WITH_CUDA
TEST_CASE("CUDA build: the GPU backend is registered exactly when a GPU is usable") {
  if (cuda_emulated()) {
    // MOESEG_CUDA_EMULATE=1 on a machine without a usable GPU: the emulated backend holds the slot.
    CHECK_FALSE(cuda_usable());
    CHECK(device_available(DeviceType::CUDA));
    CHECK(register_cuda_backend_if_usable());   // "a CUDA backend is registered" (the emulated one)
    CHECK(&backend_for(Device{DeviceType::CUDA, 0}) != &cuda_backend());
    return;
  }
  CHECK(device_available(DeviceType::CUDA) == cuda_usable());
  CHECK(register_cuda_backend_if_usable() == cuda_usable());
  if (cuda_usable()) CHECK(&backend_for(Device{DeviceType::CUDA, 0}) == &cuda_backend());
}

TEST_CASE("CUDA_CHECK turns a CUDA error into moeseg::Error with its name") {
  // cudaGetErrorName needs no device, so this runs on GPU-less machines too.
  try {
    CUDA_CHECK(cudaErrorMemoryAllocation);
    FAIL("CUDA_CHECK did not throw");
  } catch (const Error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("CUDA error") != std::string::npos);
    CHECK(msg.find("cudaErrorMemoryAllocation") != std::string::npos);
    CHECK(msg.find("test_cuda_backend.cpp:") != std::string::npos);
  }
  CHECK_NOTHROW(CUDA_CHECK(cudaSuccess));
#ifdef MOESEG_HAVE_CUBLAS_HEADER
  CHECK_THROWS_AS(CUBLAS_CHECK(CUBLAS_STATUS_NOT_INITIALIZED), Error);
#endif
#ifdef MOESEG_HAVE_CUDNN_HEADER
  CHECK_THROWS_AS(CUDNN_CHECK(CUDNN_STATUS_BAD_PARAM), Error);
#endif
}

TEST_CASE("CPU -> CUDA -> CPU round trip keeps every value (GPU only)") {
  if (!cuda_usable()) {
    moeseg::testing::skip("no usable GPU (the emulated device's copies are checked in test_tensor.cpp and tests/device/)");
    return;
  }
  const Device gpu{DeviceType::CUDA, 0};
  // 37 x 1001 floats: odd sizes, more than one allocator size class.
  std::vector<float> v(37 * 1001);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i) * 0.5f - 1000.25f;
  const Tensor host = Tensor::from_vector(v, {37, 1001});
  const Tensor dev = host.to(gpu);
  CHECK(dev.device() == gpu);
  const Tensor dev2 = dev.to(gpu).clone();  // device-to-device copy
  const Tensor back = dev2.to(Device{});
  CHECK(back.device().is_cpu());
  CHECK(back.to_vector<float>() == v);
  const Tensor z = Tensor::zeros({5, 7}, DType::Float32, gpu).to(Device{});  // cudaMemset path
  for (float x : z.to_vector<float>()) CHECK(x == 0.0f);
}
#endif
