// `moeseg kernels` prints the listing made at build time: run from a folder with no source tree,
// it still lists every __global__ kernel of kernels/ (each row's file exists in the tree this
// binary was built from and declares that kernel), each with a CUDA-on-CPU test that names it in a
// `// covers:` line, and ends with `uncovered: 0`.
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/read_text.h"
#include "tests/support/temp_dir.h"

namespace fs = std::filesystem;

using moeseg::testing::read_text;

TEST_CASE("kernels: the build-time listing needs no source tree and covers every kernel") {
  moeseg::testing::TempDir dir("kernels_cwd");
  const fs::path out = dir.path / "out.txt";
  // From an empty folder: nothing to scan there.
  const std::string cmd = "cd '" + dir.str() + "' && " + std::string(MOESEG_CLI_PATH) + " kernels > '" + out.string() + "' 2>&1";
  const int rc = std::system(cmd.c_str());
  const std::string text = read_text(out);
  INFO(text);
  REQUIRE(rc == 0);
  CHECK(text.find("uncovered: 0\n") != std::string::npos);
  const fs::path root = fs::path(MOESEG_FIXTURE_DIR).parent_path().parent_path();   // <src>/tests/fixtures
  std::istringstream lines(text);
  std::string line;
  std::getline(lines, line);
  CHECK(line.rfind("kernel ", 0) == 0);   // the header row
  int rows = 0;
  bool gate_combine = false;
  while (std::getline(lines, line) && line.rfind("kernels: ", 0) != 0) {
    std::istringstream row(line);
    std::string name, file, test;
    row >> name >> file >> test;
    INFO(line);
    CHECK(file.rfind("kernels/", 0) == 0);
    REQUIRE(fs::exists(root / file));
    CHECK(read_text(root / file).find(name) != std::string::npos);
    CHECK(test != "-");
    gate_combine = gate_combine || name.find("gate_softmax_combine") != std::string::npos;
    ++rows;
  }
  CHECK(gate_combine);
  CHECK(rows >= 20);
  CHECK(line == "kernels: " + std::to_string(rows));
}
