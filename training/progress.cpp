// Progress line and JSONL log (see progress.h).
#include "training/progress.h"

#include <unistd.h>

#include <cmath>

#include "core/error.h"

namespace moeseg {

std::string format_duration(double s) {
  char buf[32];
  if (!std::isfinite(s) || s < 0) return "?";
  if (s < 60) std::snprintf(buf, sizeof buf, "%.1fs", s);
  else if (s < 3600) std::snprintf(buf, sizeof buf, "%dm%02ds", int(s) / 60, int(s) % 60);
  else std::snprintf(buf, sizeof buf, "%dh%02dm", int(s) / 3600, (int(s) % 3600) / 60);
  return buf;
}

ProgressBar::ProgressBar(std::string label, int64_t total, bool quiet, int64_t plain_every)
    : label_(std::move(label)), total_(total), plain_every_(plain_every > 0 ? plain_every : 1), quiet_(quiet),
      tty_(isatty(fileno(stdout)) != 0), start_(std::chrono::steady_clock::now()), last_draw_(start_) {}

std::string ProgressBar::line(int64_t done, double loss, int64_t images) const {
  const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double ips = el > 0 ? images / el : 0;
  const double eta = done > 0 ? el / done * (total_ - done) : NAN;
  const int width = 20;
  const int fill = total_ > 0 ? static_cast<int>(width * done / total_) : 0;
  std::string bar = "[" + std::string(fill, '#') + std::string(width - fill, '.') + "]";
  char loss_text[32] = "";
  if (std::isfinite(loss)) std::snprintf(loss_text, sizeof loss_text, " loss %.4f", loss);   // eval passes NaN
  char buf[256];
  std::snprintf(buf, sizeof buf, "%s %s %lld/%lld%s %.1f img/s elapsed %s eta %s", label_.c_str(), bar.c_str(),
                static_cast<long long>(done), static_cast<long long>(total_), loss_text, ips,
                format_duration(el).c_str(), format_duration(eta).c_str());
  return buf;
}

void ProgressBar::update(int64_t done, double loss, int64_t images) {
  last_done_ = done;
  last_loss_ = loss;
  last_images_ = images;
  if (quiet_) return;
  if (tty_) {
    auto now = std::chrono::steady_clock::now();
    if (done != total_ && now - last_draw_ < std::chrono::milliseconds(250)) return;
    last_draw_ = now;
    std::string l = line(done, loss, images);
    const size_t len = l.size();
    if (len < last_len_) l += std::string(last_len_ - len, ' ');   // erase the longer previous line
    last_len_ = len;
    std::printf("\r%s", l.c_str());
    std::fflush(stdout);
  } else if (done % plain_every_ == 0 || done == total_) {
    std::printf("%s\n", line(done, loss, images).c_str());
    std::fflush(stdout);
  }
}

void ProgressBar::finish(const std::string& suffix) {
  if (quiet_) return;
  if (tty_) std::printf("\r%s%s\n", line(last_done_, last_loss_, last_images_).c_str(), suffix.c_str());
  else if (!suffix.empty()) std::printf("%s%s\n", label_.c_str(), suffix.c_str());
  std::fflush(stdout);
}

void JsonlLog::open(const std::string& path, bool append) {
  out_.open(path, append ? std::ios::app : std::ios::trunc);
  MOESEG_CHECK(out_.good(), "train log: cannot open ", path);
}

void JsonlLog::write(const nlohmann::json& j) {
  if (!out_.is_open()) return;
  out_ << j.dump() << '\n';
  out_.flush();
}

}  // namespace moeseg
