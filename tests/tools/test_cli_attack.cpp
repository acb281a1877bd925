// End-to-end check of `moeseg attack` (tensor form): the FRRN-A and MoE weights of the committed
// model fixtures are split into weights / input / labels files, the real CLI binary runs FGSM and
// PGD, and its "delta" must match PyTorch's FGSM δ (tests/fixtures/training/attacks.safetensors,
// float64; the CLI runs in float32, so a sign may differ only where torch's gradient is tiny) and
// stay within eps; bad arguments fail with a message naming the value.
#include <doctest/doctest.h>

#include "support/gradcheck.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/safetensors.h"
#include "tests/support/read_text.h"
#include "tests/support/small_cli_case.h"
#include "tests/support/temp_dir.h"

using namespace moeseg;
namespace fs = std::filesystem;

namespace {

using testing::read_text;
std::string fixture(const std::string& rel) { return testing::fixture_path(rel); }
int run(const std::string& args, const std::string& err_file) { return testing::run_cli_quiet(args, err_file); }
void write_case(const testing::TempDir& d, bool moe) { testing::write_small_cli_case(d, moe); }

std::string common(const testing::TempDir& d) {
  return "attack --config " + d.str("model.json") + " --weights " + d.str("w.safetensors") + " --input " +
         d.str("x.safetensors") + " --labels " + d.str("y.safetensors");
}

}  // namespace

TEST_CASE("moeseg attack: FGSM delta = PyTorch's (FRRN-A and MoE), PGD within eps") {
  TensorFile want = load_safetensors(fixture("training/attacks.safetensors"));
  for (bool moe : {false, true}) {
    const std::string name = moe ? "moe" : "frrn";
    CAPTURE(name);
    testing::TempDir d("cli_attack");
    write_case(d, moe);
    REQUIRE(run(common(d) + " --attack fgsm --eps 0.05 --out " + d.str("f.safetensors"), d.str("err")) == 0);
    TensorFile f = load_safetensors(d.str("f.safetensors"));
    const auto delta = f.get("delta").to(DType::Float64).to_vector<double>();
    const auto tdelta = want.get(name + ".fgsm_delta").to_vector<double>();
    const auto tgrad = want.get(name + ".grad_x").to_vector<double>();
    double gmax = 0;
    for (double g : tgrad) gmax = std::max(gmax, std::abs(g));
    REQUIRE(delta.size() == tdelta.size());
    int64_t wrong = 0;
    for (size_t i = 0; i < delta.size(); ++i)
      if (std::abs(delta[i] - tdelta[i]) > 1e-7) {
        ++wrong;
        CHECK_MESSAGE(std::abs(tgrad[i]) < 1e-4 * gmax, "element " << i << ": ours " << delta[i] << " torch "
                                                                   << tdelta[i] << " grad " << tgrad[i]);
      }
    MESSAGE(name << ": FGSM delta elements differing from torch (float32 vs float64): " << wrong);
    CHECK(wrong <= 5);
    const auto adv = f.get("adversarial").to(DType::Float64).to_vector<double>();
    const auto x = load_safetensors(d.str("x.safetensors")).get("input").to(DType::Float64).to_vector<double>();
    for (size_t i = 0; i < adv.size(); i += 97) CHECK(adv[i] == doctest::Approx(x[i] + delta[i]).epsilon(1e-6));

    REQUIRE(run(common(d) + " --attack pgd --eps 0.05 --steps 2 --clamp --out " + d.str("p.safetensors"), d.str("err")) == 0);
    TensorFile p = load_safetensors(d.str("p.safetensors"));
    double dmax = 0, amin = 1, amax = 0;
    for (double v : p.get("delta").to(DType::Float64).to_vector<double>()) dmax = std::max(dmax, std::abs(v));
    for (double v : p.get("adversarial").to(DType::Float64).to_vector<double>()) amin = std::min(amin, v), amax = std::max(amax, v);
    CHECK(dmax <= 0.05 * (1 + 1e-6));
    CHECK(dmax > 0.04);
    CHECK(amin >= 0.0);
    CHECK(amax <= 1.0);
  }
}

TEST_CASE("moeseg attack: bad arguments name the value") {
  testing::TempDir d("cli_attack_bad");
  write_case(d, false);
  const std::string out = " --out " + d.str("o.safetensors");
  CHECK(run(common(d) + " --attack fgsm --eps -0.5" + out, d.str("err")) != 0);
  CHECK(testing::contains(read_text(d.str("err")), "eps must be a finite number > 0, got -0.5"));
  CHECK(run(common(d) + " --attack pgd --eps 0.1 --steps 0" + out, d.str("err")) != 0);
  CHECK(testing::contains(read_text(d.str("err")), "steps must be >= 1, got 0"));
  CHECK(run(common(d) + " --attack cw --eps 0.1" + out, d.str("err")) != 0);
  CHECK(testing::contains(read_text(d.str("err")), "'cw'"));
  CHECK(run(common(d) + " --attack pgd --pgd fast --eps 0.1" + out, d.str("err")) != 0);
  CHECK(testing::contains(read_text(d.str("err")), "'fast'"));
  save_safetensors(d.str("y.safetensors"), {{"labels", Tensor::zeros({1, 16, 48}, DType::Int64)}});
  CHECK(run(common(d) + " --attack fgsm --eps 0.1" + out, d.str("err")) != 0);
  CHECK(testing::contains(read_text(d.str("err")), "[1, 16, 48]"));
  CHECK_FALSE(fs::exists(d.str("o.safetensors")));
}
