// The guided tour docs/moe-internals.md, executed. Every ```console block of the doc holds
// `$ COMMAND` lines, each followed by its output; the tests run each command (the leading word
// `moeseg` replaced by the built binary, OMP_NUM_THREADS=2 as when the doc was made) in a
// temporary folder that holds a copy of configs/tour/, so the doc's relative paths mean there what
// they mean at the repository root, and compare the output (stdout and stderr) with the doc's,
// line by line, runs of spaces collapsed:
//   * words and shapes ([1, 38, 32, 48]) exactly; integers exactly; a decimal within one unit
//     of its last printed digit (a rounding that lands the other way on another CPU); hex
//     addresses are free;
//   * in a block preceded by <!-- tour-test: numbers vary --> (trained weights, which differ in
//     their last bits between CPUs; timings; gdb's thread numbers) every number but those of
//     shapes is free, and so is a trained model's class ranking after "predicted classes (...):".
// Commands that run gdb are one case of their own, skipped when gdb cannot run here (or when
// moeseg has debug information: gdb then prints source lines the doc does not show). A planted
// drift of the doc must fail the comparison (the checker is checked).
// To refresh the doc after an intended change: MOESEG_TOUR_WRITE=/tmp/tour.md build/tests/test_tools
// -tc="docs_tour*" writes the doc with this run's outputs; diff it, then copy it over the doc.
// About a minute on 2 cores (the tour trains three tiny models). Run: ctest -R docs_tour.
#include <doctest/doctest.h>

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/skip.h"
#include "tests/support/temp_dir.h"

namespace fs = std::filesystem;

namespace {

const fs::path kSourceRoot = fs::path(MOESEG_FIXTURE_DIR).parent_path().parent_path();
const fs::path kDoc = kSourceRoot / "docs" / "moe-internals.md";

struct TourCommand {
  std::string command;                // as written after "$ " (continuation lines joined with '\n')
  std::vector<std::string> expected;  // the documented output
  size_t line = 0;                    // the doc line (1-based) of its "$ "
  size_t out_begin = 0, out_end = 0;  // doc lines [begin, end) holding that output (0-based)
  bool numbers_vary = false;
  bool gdb() const { return std::regex_search(command, std::regex(R"((^|\s)gdb\s)")); }
};

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::stringstream ss(text);
  for (std::string l; std::getline(ss, l);) lines.push_back(l);
  return lines;
}

std::vector<std::string> read_lines(const fs::path& p) {
  std::ifstream f(p);
  REQUIRE_MESSAGE(f.good(), "cannot read ", p.string());
  std::stringstream ss;
  ss << f.rdbuf();
  return split_lines(ss.str());
}

// The commands of every ```console block, in document order.
std::vector<TourCommand> parse_tour(const std::vector<std::string>& doc) {
  std::vector<TourCommand> cmds;
  bool in_block = false, vary = false;
  for (size_t i = 0; i < doc.size(); ++i) {
    const std::string& l = doc[i];
    if (!in_block) {
      if (l.rfind("```console", 0) == 0) {
        in_block = true;
        vary = i > 0 && doc[i - 1].find("<!-- tour-test: numbers vary") != std::string::npos;
      }
      continue;
    }
    if (l.rfind("```", 0) == 0) {
      in_block = false;
      continue;
    }
    if (l.rfind("$ ", 0) == 0) {
      TourCommand c;
      c.command = l.substr(2);
      c.line = i + 1;
      while (!c.command.empty() && c.command.back() == '\\' && i + 1 < doc.size()) c.command += "\n" + doc[++i];
      c.out_begin = c.out_end = i + 1;
      c.numbers_vary = vary;
      cmds.push_back(c);
    } else {
      REQUIRE_MESSAGE((!cmds.empty() && cmds.back().out_end == i), kDoc.string(), ":", i + 1,
                      ": output before the block's first `$ ` command");
      cmds.back().expected.push_back(l);
      cmds.back().out_end = i + 1;
    }
  }
  return cmds;
}

std::string collapse_spaces(const std::string& s) {
  std::string out;
  for (char ch : s) {
    if (ch == ' ' || ch == '\t' || ch == '\r') {
      if (!out.empty() && out.back() != ' ') out += ' ';
    } else {
      out += ch;
    }
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

struct Token {
  enum Kind { Text, Hex, Number } kind;
  std::string s;
  bool in_shape;   // a number of a shape: inside [N, N, ...]
};

// Text, hex addresses and numbers; a digit run glued to a letter or '_' on its left ("expert1",
// "_000000000") is text.
std::vector<Token> tokenize(const std::string& line) {
  static const std::regex num(R"(0x[0-9a-fA-F]+|-?[0-9]+(\.[0-9]+)?)"), shape(R"(\[[0-9]+(, [0-9]+)*\])");
  std::vector<std::pair<size_t, size_t>> shapes;
  for (std::sregex_iterator it(line.begin(), line.end(), shape), end; it != end; ++it)
    shapes.push_back({static_cast<size_t>(it->position()), static_cast<size_t>(it->position() + it->length())});
  std::vector<Token> t;
  size_t pos = 0;
  auto text = [&](const std::string& s) {
    if (!t.empty() && t.back().kind == Token::Text) t.back().s += s;
    else if (!s.empty()) t.push_back({Token::Text, s, false});
  };
  for (std::sregex_iterator it(line.begin(), line.end(), num), end; it != end; ++it) {
    const size_t at = static_cast<size_t>(it->position());
    const unsigned char before = at ? static_cast<unsigned char>(line[at - 1]) : ' ';
    text(line.substr(pos, at - pos));
    const std::string s = it->str();
    bool in_shape = false;
    for (auto [b, e] : shapes) in_shape = in_shape || (at > b && at < e);
    if (std::isalnum(before) || before == '_') text(s);
    else t.push_back({s.rfind("0x", 0) == 0 ? Token::Hex : Token::Number, s, in_shape});
    pos = at + s.size();
  }
  text(line.substr(pos));
  return t;
}

// "" when `actual` is what `expected` documents, else what differs.
std::string compare_line(const std::string& expected, const std::string& actual, bool numbers_vary) {
  // A trained model's class ranking comes out of float32 training, which takes another path with
  // another CPU's BLAS kernels: where numbers vary, the classes after "predicted classes (...):"
  // are free as well (the label and its pixel count are not).
  static const std::string kRanking = "predicted classes";
  if (numbers_vary && expected.rfind(kRanking, 0) == 0 && actual.rfind(kRanking, 0) == 0) {
    const size_t e_colon = expected.find(':'), a_colon = actual.find(':');
    if (e_colon != std::string::npos && a_colon != std::string::npos)
      return compare_line(expected.substr(0, e_colon + 1), actual.substr(0, a_colon + 1), false);
  }
  const std::vector<Token> e = tokenize(collapse_spaces(expected)), a = tokenize(collapse_spaces(actual));
  const std::string where = "\n  doc:    " + expected + "\n  actual: " + actual;
  if (e.size() != a.size()) return "the line differs" + where;
  for (size_t k = 0; k < e.size(); ++k) {
    if (e[k].kind != a[k].kind) return "the line differs" + where;
    if (e[k].kind == Token::Hex || e[k].s == a[k].s) continue;
    if (e[k].kind == Token::Text) return "'" + a[k].s + "' where the doc has '" + e[k].s + "'" + where;
    if (numbers_vary && !e[k].in_shape) continue;
    const size_t dot = e[k].s.find('.');
    if (dot == std::string::npos || e[k].in_shape) return "the number " + a[k].s + " where the doc has " + e[k].s + where;
    const double unit = std::pow(10.0, -static_cast<double>(e[k].s.size() - dot - 1));
    if (std::fabs(std::stod(e[k].s) - std::stod(a[k].s)) > 1.001 * unit)
      return "the number " + a[k].s + " where the doc has " + e[k].s + " (more than one unit of its last digit)" + where;
  }
  return "";
}

std::string compare_output(std::vector<std::string> expected, std::vector<std::string> actual, bool numbers_vary) {
  for (auto* v : {&expected, &actual})
    while (!v->empty() && collapse_spaces(v->back()).empty()) v->pop_back();
  for (size_t i = 0; i < expected.size() && i < actual.size(); ++i) {
    const std::string d = compare_line(expected[i], actual[i], numbers_vary);
    if (!d.empty()) return "output line " + std::to_string(i + 1) + ": " + d;
  }
  if (expected.size() != actual.size())
    return "the doc shows " + std::to_string(expected.size()) + " output lines, the command printed " +
           std::to_string(actual.size());
  return "";
}

// A folder like the repository root for the tour: configs/tour/ copied in.
void prepare_folder(const moeseg::testing::TempDir& dir) {
  fs::create_directories(dir.path / "configs");
  fs::copy(kSourceRoot / "configs" / "tour", dir.path / "configs" / "tour", fs::copy_options::recursive);
}

// Runs one tour command in `dir` (stdout and stderr together, as a terminal shows them).
std::vector<std::string> run_tour_command(const moeseg::testing::TempDir& dir, const std::string& command, int& rc) {
  static const std::regex word(R"((^|[\s;&|(])moeseg(?=\s|$))");
  const std::string cmd = std::regex_replace(command, word, std::string("$1'") + MOESEG_CLI_PATH + "'");
  // The doc's trained numbers come from 2 threads (CPU training is deterministic per thread count).
  std::ofstream(dir.str("tour_command.sh")) << "export OMP_NUM_THREADS=2\n" << cmd << "\n";
  rc = std::system(("cd '" + dir.str() + "' && timeout 300 sh tour_command.sh > tour_output.txt 2>&1").c_str());
  return read_lines(dir.path / "tour_output.txt");
}

// MOESEG_TOUR_WRITE: the doc with the outputs of this run (kept across the cases of one process).
void record_output(const TourCommand& c, const std::vector<std::string>& actual) {
  static std::map<size_t, std::pair<size_t, std::vector<std::string>>> outputs;
  const char* path = std::getenv("MOESEG_TOUR_WRITE");
  if (!path || !*path) return;
  outputs[c.out_begin] = {c.out_end, actual};
  std::vector<std::string> doc = read_lines(kDoc);
  for (auto it = outputs.rbegin(); it != outputs.rend(); ++it) {
    const auto& [begin, value] = *it;
    doc.erase(doc.begin() + static_cast<long>(begin), doc.begin() + static_cast<long>(value.first));
    doc.insert(doc.begin() + static_cast<long>(begin), value.second.begin(), value.second.end());
  }
  std::ofstream f(path);
  for (const std::string& l : doc) f << l << "\n";
}

void run_and_compare(const moeseg::testing::TempDir& dir, const TourCommand& c) {
  int rc = -1;
  const std::vector<std::string> actual = run_tour_command(dir, c.command, rc);
  record_output(c, actual);
  std::string shown;
  for (const std::string& l : actual) shown += l + "\n";
  INFO("$ ", c.command, "\n", shown);
  CHECK(rc == 0);
  const std::string diff = compare_output(c.expected, actual, c.numbers_vary);
  CHECK_MESSAGE(diff.empty(), kDoc.string(), ":", c.line, ": the command's ", diff);
}

bool gdb_runs_here(std::string& why) {
  if (std::system("command -v gdb > /dev/null 2>&1") != 0) return why = "gdb is not installed", false;
  std::ifstream bin(MOESEG_CLI_PATH, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(bin)), std::istreambuf_iterator<char>());
  if (bytes.find(".debug_info") != std::string::npos)
    return why = "moeseg has debug info: gdb shows source lines, the tour shows a Release build's session", false;
  const int rc = std::system("gdb -batch -ex run --args true 2>&1 | grep -q 'not permitted'");
  if (rc == 0) return why = "gdb may not trace processes here (ptrace not permitted)", false;
  return true;
}

}  // namespace

TEST_CASE("docs_tour: every moeseg command of docs/moe-internals.md prints what the doc shows") {
  const std::vector<TourCommand> cmds = parse_tour(read_lines(kDoc));
  moeseg::testing::TempDir dir("docs_tour");
  prepare_folder(dir);
  size_t ran = 0;
  for (const TourCommand& c : cmds) {
    if (c.gdb()) continue;
    run_and_compare(dir, c);
    ++ran;
  }
  // The tour: traces (untrained, trained, emulated CUDA), data, three trainings, predictions.
  CHECK(ran >= 10);
}

TEST_CASE("docs_tour: the gdb session of docs/moe-internals.md stops where the doc shows") {
  const std::vector<TourCommand> cmds = parse_tour(read_lines(kDoc));
  size_t gdb_commands = 0;
  for (const TourCommand& c : cmds) gdb_commands += c.gdb();
  REQUIRE(gdb_commands >= 1);
  std::string why;
  if (!gdb_runs_here(why)) {
    moeseg::testing::skip(why);
    return;
  }
  moeseg::testing::TempDir dir("docs_tour_gdb");
  prepare_folder(dir);
  for (const TourCommand& c : cmds)
    if (c.gdb()) run_and_compare(dir, c);
}

TEST_CASE("docs_tour: the comparison fails on a drifted doc and passes the documented output") {
  const std::vector<TourCommand> cmds = parse_tour(read_lines(kDoc));
  REQUIRE(!cmds.empty());
  const TourCommand& first = cmds.front();   // the first trace: shapes and 3-decimal gate weights
  REQUIRE(first.expected.size() >= 5);
  const std::vector<std::string>& doc = first.expected;
  CHECK(compare_output(doc, doc, false).empty());

  auto planted = [&](const std::regex& what, const std::string& by) {
    std::vector<std::string> out = doc;
    for (std::string& l : out) {
      const std::string changed = std::regex_replace(l, what, by, std::regex_constants::format_first_only);
      if (changed != l) {
        l = changed;
        return out;
      }
    }
    FAIL("nothing to plant in the doc's first output");
    return out;
  };
  const std::vector<std::string> shape = planted(std::regex(R"(\[1, 38, )"), "[1, 37, ");
  CHECK(!compare_output(doc, shape, false).empty());
  CHECK(!compare_output(doc, shape, true).empty());   // shapes stay exact where numbers vary
  const std::vector<std::string> word = planted(std::regex("logits"), "logit");
  CHECK(!compare_output(doc, word, true).empty());
  std::vector<std::string> longer = doc;
  longer.push_back("an extra line");
  CHECK(!compare_output(doc, longer, false).empty());
  std::vector<std::string> shorter(doc.begin(), doc.end() - 1);
  CHECK(!compare_output(doc, shorter, false).empty());

  // Decimals: one unit of the last digit passes, two fail (unless numbers vary).
  CHECK(compare_line("gate weights: expert1 0.490 expert2 0.510", "gate weights: expert1 0.491 expert2 0.509", false).empty());
  CHECK(!compare_line("gate weights: expert1 0.490 expert2 0.510", "gate weights: expert1 0.492 expert2 0.508", false).empty());
  CHECK(compare_line("gate weights: expert1 0.490 expert2 0.510", "gate weights: expert1 0.250 expert2 0.750", true).empty());
  CHECK(!compare_line("gate weights: expert1 0.490", "gate weights: expert2 0.490", true).empty());
  CHECK(!compare_line("Road 41.2%", "Sky 41.2%", true).empty());
  const std::string ranking = "predicted classes (argmax of logits, 1536 pixels): RD normal street 52.4%, Sky 38.4%";
  const std::string other = "predicted classes (argmax of logits, 1536 pixels): RD normal street 48.6%, Buildings 8.2%";
  CHECK(compare_line(ranking, other, true).empty());    // a trained model's ranking is free where numbers vary
  CHECK(!compare_line(ranking, other, false).empty());  // and exact elsewhere
  CHECK(!compare_line(ranking, "predicted classes (argmax of logits, 1535 pixels): Sky 1.0%", true).empty());
  CHECK(!compare_line("10 epochs, 150 steps", "11 epochs, 150 steps", false).empty());
  CHECK(compare_line("#0  0x000055555585ad10 in f()", "#0  0x00005555559a0000 in f()", false).empty());
  CHECK(compare_line("[Switching to Thread 0x7fff (LWP 8139)]", "[Switching to Thread 0x7ffe (LWP 8936)]", true).empty());
  CHECK(!compare_line("[Switching to Thread 0x7fff (LWP 8139)]", "[Switching to Thread 0x7ffe (LWP 8936)]", false).empty());
  CHECK(!compare_line("gate [1, 1, 2] float32", "gate [1, 2, 2] float32", true).empty());
  CHECK(compare_line("a   b", "a b", false).empty());
}
