// moeseg::Error and the checking macros used by every library file.
// Library code throws; tools catch at the top, print one line and exit non-zero.
// Messages name the op or file and the shapes/values at fault (see DESIGN.md, Conventions).
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace moeseg {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {
// Builds a message from any streamable pieces: MOESEG_CHECK(ok, "conv2d: x ", x.sizes(), " ...").
template <typename... Args>
std::string concat_message(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
[[noreturn]] void throw_error(const char* file, int line, const std::string& msg);
}  // namespace detail

}  // namespace moeseg

// Throws moeseg::Error with the message (file:line is appended so a bug report points at the check).
#define MOESEG_CHECK(cond, ...)                                                               \
  do {                                                                                        \
    if (!(cond)) ::moeseg::detail::throw_error(__FILE__, __LINE__,                            \
                                               ::moeseg::detail::concat_message(__VA_ARGS__)); \
  } while (0)

#define MOESEG_FAIL(...) \
  ::moeseg::detail::throw_error(__FILE__, __LINE__, ::moeseg::detail::concat_message(__VA_ARGS__))
