// What a function writes to stderr (fd 2, so C and C++ streams alike): the device-selection
// messages of tests/core and tests/device are asserted through it.
#pragma once
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include <doctest/doctest.h>

namespace moeseg::testing {

// Runs f with stderr redirected to a temporary file and returns what was written.
template <typename F>
std::string capture_stderr(F&& f) {
  std::fflush(stderr);
  char path[] = "/tmp/moeseg_stderr_XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  const int saved = dup(2);
  dup2(fd, 2);
  f();
  std::fflush(stderr);
  dup2(saved, 2);
  ::close(saved);
  ::close(fd);
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::remove(path);
  return ss.str();
}

}  // namespace moeseg::testing
