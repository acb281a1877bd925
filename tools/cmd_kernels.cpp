// `moeseg kernels [--root DIR]`: the kernel listing. Scans the source tree at run time: every
// `__global__` kernel in a .cu/.cuh file under kernels/, and every test file under tests/ that
// names the kernels it runs through CUDA-on-CPU in a `// covers: kernel_a kernel_b` line. Prints
// one line per kernel (name, file, covering test or "-") and ends with `uncovered: N`.
// The source root: --root, else MOESEG_SOURCE_DIR when the build defines it, else two levels up
// from this file's compiled-in path (tools/cmd_kernels.cpp). Kernels under tests/ (planted bugs,
// samples) are not part of kernels/ and are not listed. Exit code 0; 1 when the root is not found.
#include "tools/cmd_kernels.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace moeseg::cli {
namespace {

namespace fs = std::filesystem;

fs::path default_root() {
#ifdef MOESEG_SOURCE_DIR
  return fs::path(MOESEG_SOURCE_DIR);
#else
  return fs::path(__FILE__).parent_path().parent_path();
#endif
}

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

// Drops // and /* */ comments so a kernel mentioned in a comment is not listed.
std::string strip_comments(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s.compare(i, 2, "//") == 0) {
      while (i < s.size() && s[i] != '\n') ++i;
      if (i < s.size()) out += '\n';
    } else if (s.compare(i, 2, "/*") == 0) {
      const size_t e = s.find("*/", i + 2);
      i = e == std::string::npos ? s.size() : e + 1;
      out += ' ';
    } else {
      out += s[i];
    }
  }
  return out;
}

struct Kernel {
  std::string name, file;
};

std::vector<fs::path> sorted_files(const fs::path& dir, const std::vector<std::string>& exts) {
  std::vector<fs::path> files;
  if (!fs::is_directory(dir)) return files;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    const std::string ext = e.path().extension().string();
    if (std::find(exts.begin(), exts.end(), ext) != exts.end()) files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

int run_kernels(int argc, char** argv) {
  fs::path root = default_root();
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--root") == 0 && i + 1 < argc) {
      root = argv[++i];
    } else if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      std::printf("usage: moeseg kernels [--root SOURCE_DIR]\n"
                  "Lists every __global__ kernel under kernels/ with the test that covers it.\n");
      return 0;
    } else {
      std::fprintf(stderr, "moeseg kernels: unknown argument '%s' (usage: moeseg kernels [--root DIR])\n", argv[i]);
      return 1;
    }
  }
  if (root.empty()) root = ".";   // __FILE__ was a bare relative path
  if (!fs::is_directory(root / "kernels")) {
    std::fprintf(stderr, "moeseg kernels: no kernels/ under source root '%s' (pass --root)\n", root.string().c_str());
    return 1;
  }

  // __global__ [qualifiers] void name(  -- templates and __launch_bounds__ included.
  const std::regex kernel_re(R"(__global__\s+(?:__launch_bounds__\s*\([^)]*\)\s*)?void\s+(?:__launch_bounds__\s*\([^)]*\)\s*)?(\w+)\s*\()");
  std::vector<Kernel> kernels;
  for (const auto& f : sorted_files(root / "kernels", {".cu", ".cuh"})) {
    const std::string src = strip_comments(read_all(f));
    for (std::sregex_iterator it(src.begin(), src.end(), kernel_re), end; it != end; ++it)
      kernels.push_back({(*it)[1].str(), fs::relative(f, root).string()});
  }

  // kernel name -> test files naming it in a "// covers:" line.
  std::map<std::string, std::vector<std::string>> covered_by;
  const std::regex covers_re(R"(//\s*covers:([^\n]*))");
  for (const auto& f : sorted_files(root / "tests", {".cpp", ".cu"})) {
    const std::string src = read_all(f);
    for (std::sregex_iterator it(src.begin(), src.end(), covers_re), end; it != end; ++it) {
      std::istringstream names((*it)[1].str());
      std::string n;
      while (names >> n) covered_by[n].push_back(fs::relative(f, root).string());
    }
  }

  size_t width = 6;
  for (const auto& k : kernels) width = std::max(width, k.name.size());
  int uncovered = 0;
  std::printf("%-*s  %-40s  %s\n", static_cast<int>(width), "kernel", "file", "CUDA-on-CPU test");
  for (const auto& k : kernels) {
    const auto it = covered_by.find(k.name);
    std::string tests;
    if (it != covered_by.end())
      for (const auto& t : it->second) tests += (tests.empty() ? "" : ", ") + t;
    if (tests.empty()) {
      tests = "-";
      ++uncovered;
    }
    std::printf("%-*s  %-40s  %s\n", static_cast<int>(width), k.name.c_str(), k.file.c_str(), tests.c_str());
  }
  std::printf("kernels: %zu\nuncovered: %d\n", kernels.size(), uncovered);
  return 0;
}

}  // namespace moeseg::cli
