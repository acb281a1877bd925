// SVG line plots (see curves.h).
#include "training/curves.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/safetensors.h"

namespace moeseg {

namespace {

const char* const kPalette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"};

std::string escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '&') o += "&amp;";
    else o += c;
  }
  return o;
}

std::string num(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.4g", v);
  return b;
}

}  // namespace

std::string render_svg_plot(const std::string& title, const std::string& x_label, const std::string& y_label,
                            const std::vector<CurveSeries>& series, int width, int height) {
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (auto& s : series)
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.y[i])) continue;
      x0 = std::min(x0, s.x[i]);
      x1 = std::max(x1, s.x[i]);
      y0 = std::min(y0, s.y[i]);
      y1 = std::max(y1, s.y[i]);
    }
  if (!std::isfinite(x0)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  if (x1 <= x0) x1 = x0 + 1;
  if (y1 <= y0) y1 = y0 + 1e-3 + std::abs(y0) * 0.1;
  const double pad = (y1 - y0) * 0.05;
  y0 -= pad;
  y1 += pad;
  const double L = 64, R = 16, T = 32, B = 44;
  const double pw = width - L - R, ph = height - T - B;
  auto X = [&](double x) { return L + (x - x0) / (x1 - x0) * pw; };
  auto Y = [&](double y) { return T + (1 - (y - y0) / (y1 - y0)) * ph; };
  std::ostringstream o;
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height
    << "\" font-family=\"sans-serif\" font-size=\"11\">\n";
  o << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  o << "<text x=\"" << width / 2 << "\" y=\"18\" text-anchor=\"middle\" font-size=\"14\">" << escape(title) << "</text>\n";
  o << "<rect x=\"" << L << "\" y=\"" << T << "\" width=\"" << pw << "\" height=\"" << ph
    << "\" fill=\"none\" stroke=\"#444\"/>\n";
  for (int i = 0; i <= 4; ++i) {   // 5 ticks per axis, grid lines
    const double yv = y0 + (y1 - y0) * i / 4, xv = x0 + (x1 - x0) * i / 4;
    o << "<line x1=\"" << L << "\" x2=\"" << L + pw << "\" y1=\"" << Y(yv) << "\" y2=\"" << Y(yv)
      << "\" stroke=\"#ddd\"/>\n";
    o << "<text x=\"" << L - 4 << "\" y=\"" << Y(yv) + 4 << "\" text-anchor=\"end\">" << num(yv) << "</text>\n";
    o << "<text x=\"" << X(xv) << "\" y=\"" << T + ph + 14 << "\" text-anchor=\"middle\">" << num(xv) << "</text>\n";
  }
  o << "<text x=\"" << L + pw / 2 << "\" y=\"" << height - 8 << "\" text-anchor=\"middle\">" << escape(x_label)
    << "</text>\n";
  o << "<text transform=\"translate(14," << T + ph / 2 << ") rotate(-90)\" text-anchor=\"middle\">" << escape(y_label)
    << "</text>\n";
  int k = 0;
  for (auto& s : series) {
    std::ostringstream pts;
    int n = 0;
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i)
      if (std::isfinite(s.y[i])) pts << (n++ ? " " : "") << X(s.x[i]) << "," << Y(s.y[i]);
    if (n == 0) continue;
    const std::string colour = s.colour.empty() ? kPalette[k % 6] : s.colour;
    o << "<polyline fill=\"none\" stroke=\"" << colour << "\" stroke-width=\"1.5\" points=\"" << pts.str() << "\"/>\n";
    if (n == 1) o << "<circle cx=\"" << X(s.x[0]) << "\" cy=\"" << Y(s.y[0]) << "\" r=\"3\" fill=\"" << colour << "\"/>\n";
    o << "<text x=\"" << L + 8 << "\" y=\"" << T + 14 + 14 * k << "\" fill=\"" << colour << "\">" << escape(s.name)
      << "</text>\n";
    ++k;
  }
  o << "</svg>\n";
  return o.str();
}

void write_svg_plot(const std::string& path, const std::string& title, const std::string& x_label,
                    const std::string& y_label, const std::vector<CurveSeries>& series) {
  write_file_atomic(path, render_svg_plot(title, x_label, y_label, series));
}

void write_run_curves(const std::string& run_dir) {
  namespace fs = std::filesystem;
  std::ifstream f(fs::path(run_dir) / "train_log.jsonl");
  if (!f.good()) return;
  CurveSeries step_loss{"train loss (step)", {}, {}, "#9ecae1"}, epoch_loss{"train loss (epoch mean)", {}, {}, ""},
      val_loss{"val loss", {}, {}, "#d62728"}, val_miou{"val mIoU", {}, {}, "#2ca02c"};
  for (std::string line; std::getline(f, line);) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (...) {
      continue;   // a line cut by a kill
    }
    const std::string kind = j.value("kind", "");
    if (kind == "step") {
      step_loss.x.push_back(j.value("epoch_f", 0.0));
      step_loss.y.push_back(j.value("loss", NAN));
    } else if (kind == "epoch") {
      epoch_loss.x.push_back(j.value("epoch", 0));
      epoch_loss.y.push_back(j.value("train_loss", NAN));
    } else if (kind == "val") {
      val_loss.x.push_back(j.value("epoch", 0));
      val_loss.y.push_back(j.value("val_loss", NAN));
      val_miou.x.push_back(j.value("epoch", 0));
      val_miou.y.push_back(j.value("miou", NAN));
    }
  }
  write_svg_plot((fs::path(run_dir) / "loss.svg").string(), "loss", "epoch", "cross-entropy",
                 {step_loss, epoch_loss, val_loss});
  write_svg_plot((fs::path(run_dir) / "miou.svg").string(), "validation mIoU", "epoch", "mIoU", {val_miou});
}

}  // namespace moeseg
