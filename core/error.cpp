// Out-of-line part of moeseg::Error: formats "message (at file:line)".
#include "core/error.h"

namespace moeseg::detail {

void throw_error(const char* file, int line, const std::string& msg) {
  std::string f = file;
  auto slash = f.find_last_of('/');
  if (slash != std::string::npos) f = f.substr(slash + 1);
  throw Error(msg + " (at " + f + ":" + std::to_string(line) + ")");
}

}  // namespace moeseg::detail
