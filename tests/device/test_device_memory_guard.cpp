// The device memory guard checked (core/device_memory_guard.h): on the emulated CUDA device, host
// code that reads or writes a device tensor must be stopped and reported, as a GPU would crash,
// while kernels, device copies and device fills must run untouched. Each planted bug runs in a
// forked child whose stderr and fate the parent reads; the fixed versions run the same way and
// must exit cleanly. On a real GPU these cases skip (the hardware is the checker there).
#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <functional>
#include <string>

#include "core/cuda_emulation.h"
#include "core/device_memory_guard.h"
#include "core/tensor.h"
#include "kernels/elementwise.h"
#include "tests/support/skip.h"

using namespace moeseg;

namespace {

const Device kCuda{DeviceType::CUDA, 0};

bool have_guarded_emulated_device() {
  if (!device_available(DeviceType::CUDA)) enable_cuda_emulation();
  if (!cuda_emulated()) {
    moeseg::testing::skip("CUDA is a real GPU here: its hardware stops host dereferences");
    return false;
  }
  if (!device_memory_guard_enabled()) {
    moeseg::testing::skip("MOESEG_CUDA_GUARD=0: the device memory guard is off");
    return false;
  }
  return true;
}

struct ChildResult {
  bool exited = false;
  int exit_code = -1;
  int signal = 0;
  std::string err;
};

// Runs body in a forked child with stderr captured; the child exits 0 when body returns.
ChildResult run_in_child(const std::function<void()>& body) {
  std::fflush(stdout);
  std::fflush(stderr);
  char path[] = "/tmp/moeseg_guard_XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    dup2(fd, 2);
    body();
    std::fflush(stderr);
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ChildResult r;
  r.exited = WIFEXITED(status);
  if (r.exited) r.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  lseek(fd, 0, SEEK_SET);
  char buf[4096];
  for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) r.err.append(buf, static_cast<size_t>(n));
  ::close(fd);
  unlink(path);
  return r;
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("planted_host_deref: a host read of an emulated device tensor is stopped and names the tensor") {
  if (!have_guarded_emulated_device()) return;
  const ChildResult r = run_in_child([] {
    Tensor t = Tensor::zeros({2, 3, 5}, DType::Float32, kCuda);
    volatile float x = t.data<float>()[4];   // the planted bug: host code dereferences device memory
    (void)x;
  });
  CHECK_MESSAGE(r.signal == SIGABRT, "child exited=", r.exited, " code=", r.exit_code, " stderr: ", r.err);
  CHECK_MESSAGE(contains(r.err, "host code touched emulated CUDA device memory"), r.err);
  CHECK_MESSAGE(contains(r.err, "byte 16 of a live"), r.err);
  CHECK_MESSAGE(contains(r.err, "float32 [2, 3, 5]"), r.err);
  CHECK_MESSAGE(contains(r.err, "backtrace"), r.err);
}

TEST_CASE("planted_host_deref: a host write into an emulated device tensor is stopped") {
  if (!have_guarded_emulated_device()) return;
  const ChildResult r = run_in_child([] {
    Tensor t = Tensor::zeros({64}, DType::Int64, kCuda);
    t.data<int64_t>()[63] = 1;   // the planted bug, a write this time, at the last element
  });
  CHECK_MESSAGE(r.signal == SIGABRT, "child exited=", r.exited, " code=", r.exit_code, " stderr: ", r.err);
  CHECK_MESSAGE(contains(r.err, "byte 504 of a live"), r.err);
  CHECK_MESSAGE(contains(r.err, "int64 [64]"), r.err);
}

TEST_CASE("planted_host_deref fixed: the same values read through a copy to the CPU pass the guard") {
  if (!have_guarded_emulated_device()) return;
  const ChildResult r = run_in_child([] {
    Tensor t = Tensor::full({2, 3, 5}, 2.5, DType::Float32, kCuda);
    Tensor host = t.to(Device{});
    if (host.data<float>()[4] != 2.5f) _exit(3);
  });
  CHECK_MESSAGE((r.exited && r.exit_code == 0), "signal=", r.signal, " code=", r.exit_code, " stderr: ", r.err);
  CHECK(r.err.empty());
}

TEST_CASE("device memory guard: kernels, device copies and fills touch guarded memory freely, in this process") {
  if (!have_guarded_emulated_device()) return;
  // In this process, not a child: device work must never trip the guard or leave memory open.
  Tensor a = Tensor::full({3, 7}, -1.5, DType::Float32, kCuda);
  Tensor b = Tensor::arange(21, DType::Float32).reshape({3, 7}).to(kCuda);
  Tensor c = relu(add(a, b));   // kernels on the emulated device
  Tensor d = c.clone();         // a device-to-device copy
  Tensor host = d.to(Device{});
  for (int i = 0; i < 21; ++i) CHECK(host.data<float>()[i] == doctest::Approx(std::max(0.0, i - 1.5)));
  CHECK(is_guarded_device_pointer(c.data<float>()));   // taking the pointer is fine; dereferencing is not
  // After all that work the memory is closed again: a host read still faults.
  const ChildResult r = run_in_child([&] {
    volatile float x = c.data<float>()[0];
    (void)x;
  });
  CHECK_MESSAGE(r.signal == SIGABRT, "stderr: ", r.err);
}
