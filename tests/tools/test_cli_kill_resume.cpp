// kill -9 and --resume, end to end through the real `moeseg train`: a run killed (SIGKILL)
// during training, while a checkpoint's staging folder is complete, and between the two renames
// that swap it in, then resumed, ends with weights bit-identical to an uninterrupted run. The
// checkpoint write's pause points come from MOESEG_CHECKPOINT_PAUSE_MS (training/checkpoint.cpp),
// so each kill lands exactly where it is meant to; the poll deadlines are generous for a loaded
// machine. Also: a second `train` into a folder that holds a run is refused without
// --resume/--overwrite, naming the folder.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "tests/support/read_text.h"
#include "tests/support/temp_dir.h"

extern char** environ;

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

using moeseg::testing::read_text;

// Runs the CLI and returns its exit status; output to `log`.
int run_cli(const std::string& args, const std::string& log, const std::string& env = "") {
  const std::string cmd = env + " " + std::string(MOESEG_CLI_PATH) + " " + args + " > " + log + " 2>&1";
  const int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

// Starts the CLI in the background with one extra environment variable.
pid_t spawn_cli(const std::vector<std::string>& args, const std::string& env_kv, const std::string& log) {
  std::vector<std::string> all = {MOESEG_CLI_PATH};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_store;
  for (char** e = environ; *e; ++e) env_store.emplace_back(*e);
  env_store.push_back(env_kv);
  std::vector<char*> envp;
  for (auto& e : env_store) envp.push_back(e.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, MOESEG_CLI_PATH, &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  REQUIRE(rc == 0);
  return pid;
}

// Polls `cond` until it holds (true) or the deadline passes (false).
bool wait_for(const std::function<bool()>& cond, double seconds = 120) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return cond();
}

void kill_and_reap(pid_t pid) {
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGKILL);
}

struct Fixture {
  moeseg::testing::TempDir dir{"killresume"};
  std::string config;
  Fixture() {
    const std::string data = dir.str() + "/data";
    REQUIRE(run_cli("data synth --out " + data + " --height 32 --width 48 --train 8 --val 2 --test 2 --seed 4",
                    dir.str() + "/synth.log") == 0);
    const json c = {{"name", "killresume"},
                    {"model", {{"model", "frrn_a"}, {"num_classes", 38}, {"width", 0.125}, {"seed", 3}}},
                    {"data", {{"root", data}, {"subset", "highway"}, {"height", 32}, {"width", 32}, {"workers", 0}}},
                    {"train", {{"epochs", 3}, {"batch", 2}, {"optimizer", {{"type", "adam"}, {"lr", 0.01}}}, {"seed", 9}}}};
    config = dir.str() + "/config.json";
    std::ofstream(config) << c.dump(2);
  }
  std::string weights(const std::string& run) const { return read_text(fs::path(run) / "last" / "model.safetensors"); }
};

}  // namespace

TEST_CASE("kill -9 during training and during checkpoint writes, then --resume: bit-identical weights") {
  Fixture f;
  const std::string ref = f.dir.str() + "/ref";
  REQUIRE(run_cli("train " + f.config + " --out " + ref + " --quiet", f.dir.str() + "/ref.log") == 0);
  const std::string want = f.weights(ref);
  REQUIRE(want.size() > 1000);

  struct KillPoint {
    const char* name;
    const char* pause;   // MOESEG_CHECKPOINT_PAUSE_MS
    std::function<bool(const fs::path&)> ready;
  };
  const std::vector<KillPoint> points = {
      // During training: epoch 1 is checkpointed, epoch 2 is running.
      {"training", "0",
       [](const fs::path& run) {
         std::ifstream log(run / "train_log.jsonl");
         std::string all((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
         return fs::exists(run / "last" / "meta.json") && all.find("\"epoch\":2") != std::string::npos;
       }},
      // A complete staging folder of epoch 2's last/ checkpoint, not yet swapped in.
      {"staged checkpoint", "3000",
       [](const fs::path& run) {
         return fs::exists(run / "last" / "meta.json") && fs::exists(run / "last.staging" / "meta.json");
       }},
      // Between the renames: last/ moved to last.old, the new one still in staging.
      {"between renames", "3000",
       [](const fs::path& run) { return fs::exists(run / "last.old" / "meta.json") && !fs::exists(run / "last"); }},
  };
  for (const KillPoint& k : points) {
    CAPTURE(k.name);
    const fs::path run = f.dir.path / (std::string("run_") + std::to_string(&k - points.data()));
    const pid_t pid = spawn_cli({"train", f.config, "--out", run.string(), "--quiet"},
                                std::string("MOESEG_CHECKPOINT_PAUSE_MS=") + k.pause, (run.string() + ".log"));
    const bool hit = wait_for([&] { return k.ready(run); });
    CHECK_MESSAGE(hit, "the kill point was not reached; log: ", read_text(run.string() + ".log"));
    kill_and_reap(pid);
    // The killed run is not finished: the next plain train refuses it, --resume completes it.
    CHECK(run_cli("train " + f.config + " --out " + run.string() + " --quiet", run.string() + ".again.log") == 2);
    CHECK(read_text(run.string() + ".again.log").find("already holds a run") != std::string::npos);
    REQUIRE(run_cli("train " + f.config + " --out " + run.string() + " --resume --quiet", run.string() + ".resume.log") == 0);
    CHECK_MESSAGE(f.weights(run.string()) == want, "resumed weights differ from the uninterrupted run's");
  }
}

TEST_CASE("train into a folder that holds a run: refused, --overwrite starts again, --resume of a finished run is a no-op") {
  Fixture f;
  const std::string run = f.dir.str() + "/run";
  REQUIRE(run_cli("train " + f.config + " --out " + run + " --quiet", f.dir.str() + "/1.log") == 0);
  const std::string first = f.weights(run);
  CHECK(run_cli("train " + f.config + " --out " + run + " --quiet", f.dir.str() + "/2.log") == 2);
  const std::string msg = read_text(f.dir.str() + "/2.log");
  CHECK(msg.find("already holds a run") != std::string::npos);
  CHECK(msg.find(run) != std::string::npos);
  CHECK(msg.find("--resume") != std::string::npos);
  CHECK(msg.find("--overwrite") != std::string::npos);
  CHECK(f.weights(run) == first);   // nothing was lost
  CHECK(run_cli("train " + f.config + " --out " + run + " --overwrite --resume --quiet", f.dir.str() + "/3.log") == 2);
  REQUIRE(run_cli("train " + f.config + " --out " + run + " --overwrite --quiet", f.dir.str() + "/4.log") == 0);
  CHECK(f.weights(run) == first);   // same config, same seed: the same weights again
  REQUIRE(run_cli("train " + f.config + " --out " + run + " --resume --quiet", f.dir.str() + "/5.log") == 0);
  CHECK(f.weights(run) == first);
}
