// The reproduce report: the Markdown table, the HTML page, label PNGs (see report.h).
#include "training/report.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/safetensors.h"
#include "data/image_io.h"
#include "data/label_colours.h"

namespace moeseg {

namespace fs = std::filesystem;
using json = nlohmann::json;

void write_label_png(const std::string& path, const Tensor& labels, int64_t num_classes) {
  data::write_png(path, data::colourise_labels(labels, num_classes));
}

namespace {
// "38.34", "38.34 ± 1.20" with a spread, "–" when not evaluated.
std::string percent_cell(const ResultRow& r, size_t k) {
  const double v = r.miou[k];
  if (!std::isfinite(v)) return "–";
  char b[48];
  if (k < r.miou_std.size() && std::isfinite(r.miou_std[k])) std::snprintf(b, sizeof b, "%.2f ± %.2f", 100 * v, 100 * r.miou_std[k]);
  else std::snprintf(b, sizeof b, "%.2f", 100 * v);
  return b;
}
}  // namespace

std::string markdown_table(const std::vector<std::string>& columns, const std::vector<ResultRow>& rows) {
  std::ostringstream o;
  o << "| Model |";
  for (auto& c : columns) o << " " << c << " |";
  o << "\n|---|";
  for (size_t i = 0; i < columns.size(); ++i) o << "---:|";
  o << "\n";
  for (auto& r : rows) {
    o << "| " << r.model << " |";
    for (size_t k = 0; k < r.miou.size(); ++k) {
      o << " " << percent_cell(r, k) << " |";
    }
    o << "\n";
  }
  return o.str();
}

void write_html_report(const std::string& path, const std::string& title, const std::string& intro,
                       const std::vector<std::string>& columns, const std::vector<ResultRow>& rows,
                       const std::vector<std::pair<std::string, std::string>>& svg_files,
                       const std::vector<std::pair<std::string, std::string>>& images) {
  std::ostringstream o;
  o << "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>" << title
    << "</title>\n<style>body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}"
       "td,th{border:1px solid #aaa;padding:3px 8px;text-align:right}td:first-child{text-align:left}"
       "figure{display:inline-block;margin:4px}img{image-rendering:pixelated;width:256px}</style></head><body>\n";
  o << "<h1>" << title << "</h1>\n<p>" << intro << "</p>\n<h2>mIoU (%)</h2>\n<table><tr><th>Model</th>";
  for (auto& c : columns) o << "<th>" << c << "</th>";
  o << "</tr>\n";
  for (auto& r : rows) {
    o << "<tr><td>" << r.model << "</td>";
    for (size_t k = 0; k < r.miou.size(); ++k) o << "<td>" << percent_cell(r, k) << "</td>";
    o << "</tr>\n";
  }
  o << "</table>\n<h2>Training curves</h2>\n";
  for (auto& [caption, file] : svg_files) {
    std::ifstream f(file);
    if (!f.good()) continue;
    std::stringstream ss;
    ss << f.rdbuf();
    o << "<figure>" << ss.str() << "<figcaption>" << caption << "</figcaption></figure>\n";
  }
  o << "<h2>Example predictions</h2>\n";
  for (auto& [caption, rel] : images)
    o << "<figure><img src=\"" << rel << "\"><figcaption>" << caption << "</figcaption></figure>\n";
  o << "</body></html>\n";
  write_file_atomic(path, o.str());
}

}  // namespace moeseg
