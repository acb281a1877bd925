// Console progress for training and evaluation: one line with epoch, step/steps, loss, images/s
// and ETA. On a TTY the line is redrawn in place with '\r' (throttled to ~4 Hz); otherwise (logs,
// CI, pipes) a plain line is printed every `plain_every` updates and at the end, so log files
// stay readable. Also the JSONL run log (train_log.jsonl: one JSON object per line).
#pragma once
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

namespace moeseg {

class ProgressBar {
 public:
  // total: steps of this phase; label: e.g. "epoch 3/20"; quiet: print nothing.
  ProgressBar(std::string label, int64_t total, bool quiet = false, int64_t plain_every = 10);
  // After step `done` (1-based) of `total`; images processed so far in this phase.
  void update(int64_t done, double loss, int64_t images);
  void finish(const std::string& suffix = "");

 private:
  std::string line(int64_t done, double loss, int64_t images) const;
  std::string label_;
  int64_t total_, plain_every_;
  bool quiet_, tty_;
  std::chrono::steady_clock::time_point start_, last_draw_;
  int64_t last_done_ = 0;
  double last_loss_ = 0;
  int64_t last_images_ = 0;
  size_t last_len_ = 0;
};

// "1m05s", "12.3s", "2h03m".
std::string format_duration(double seconds);

// Appends JSON objects, one per line, flushed after each (a killed run keeps its log).
class JsonlLog {
 public:
  JsonlLog() = default;
  void open(const std::string& path, bool append);
  void write(const nlohmann::json& j);
  bool is_open() const { return out_.is_open(); }

 private:
  std::ofstream out_;
};

}  // namespace moeseg
