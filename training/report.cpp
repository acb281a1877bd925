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

std::string markdown_table(const TextTable& t) {
  std::ostringstream o;
  o << "|";
  for (auto& c : t.header) o << " " << c << " |";
  o << "\n|";
  for (size_t i = 0; i < t.header.size(); ++i) o << (i < t.left ? "---|" : "---:|");
  o << "\n";
  for (auto& r : t.rows) {
    o << "|";
    for (auto& c : r) o << " " << c << " |";
    o << "\n";
  }
  return o.str();
}

namespace {

std::string html_escape(const std::string& s) {
  std::string o;
  for (char ch : s) {
    switch (ch) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      default: o += ch;
    }
  }
  return o;
}

void html_table(std::ostringstream& o, const TextTable& t) {
  o << "<table><tr>";
  for (auto& c : t.header) o << "<th>" << html_escape(c) << "</th>";
  o << "</tr>\n";
  for (auto& r : t.rows) {
    o << "<tr>";
    for (size_t i = 0; i < r.size(); ++i)
      o << (i < t.left ? "<td class=\"l\">" : "<td>") << html_escape(r[i]) << "</td>";
    o << "</tr>\n";
  }
  o << "</table>\n";
}

TextTable miou_text_table(const std::vector<std::string>& columns, const std::vector<ResultRow>& rows) {
  TextTable t;
  t.header.push_back("Model");
  t.header.insert(t.header.end(), columns.begin(), columns.end());
  for (auto& r : rows) {
    std::vector<std::string> cells{r.model};
    for (size_t k = 0; k < r.miou.size(); ++k) cells.push_back(percent_cell(r, k));
    t.rows.push_back(std::move(cells));
  }
  return t;
}

}  // namespace

std::string markdown_table(const std::vector<std::string>& columns, const std::vector<ResultRow>& rows) {
  return markdown_table(miou_text_table(columns, rows));
}

void write_html_page(const std::string& path, const std::string& title, const std::string& intro,
                     const std::vector<HtmlSection>& sections) {
  std::ostringstream o;
  o << "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>" << html_escape(title)
    << "</title>\n<style>body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse;"
       "margin-bottom:1em}td,th{border:1px solid #aaa;padding:3px 8px;text-align:right}td.l{text-align:left}"
       "figure{display:inline-block;margin:4px}img{image-rendering:pixelated;width:256px}</style></head><body>\n";
  o << "<h1>" << html_escape(title) << "</h1>\n<p>" << html_escape(intro) << "</p>\n";
  for (const HtmlSection& s : sections) {
    if (!s.heading.empty()) o << "<h2>" << html_escape(s.heading) << "</h2>\n";
    if (!s.text.empty()) o << "<p>" << html_escape(s.text) << "</p>\n";
    for (const TextTable& t : s.tables) html_table(o, t);
    for (auto& [caption, file] : s.svg_files) {
      std::ifstream f(file);
      if (!f.good()) continue;
      std::stringstream ss;
      ss << f.rdbuf();
      o << "<figure>" << ss.str() << "<figcaption>" << html_escape(caption) << "</figcaption></figure>\n";
    }
    for (auto& [caption, rel] : s.images)
      o << "<figure><img src=\"" << html_escape(rel) << "\"><figcaption>" << html_escape(caption)
        << "</figcaption></figure>\n";
  }
  o << "</body></html>\n";
  write_file_atomic(path, o.str());
}

void write_html_report(const std::string& path, const std::string& title, const std::string& intro,
                       const std::vector<std::string>& columns, const std::vector<ResultRow>& rows,
                       const std::vector<std::pair<std::string, std::string>>& svg_files,
                       const std::vector<std::pair<std::string, std::string>>& images,
                       const std::vector<HtmlSection>& more) {
  std::vector<HtmlSection> sections;
  sections.push_back({"mIoU (%)", "", {miou_text_table(columns, rows)}, {}, {}});
  if (!svg_files.empty()) sections.push_back({"Training curves", "", {}, svg_files, {}});
  if (!images.empty()) sections.push_back({"Example predictions", "", {}, {}, images});
  sections.insert(sections.end(), more.begin(), more.end());
  write_html_page(path, title, intro, sections);
}

}  // namespace moeseg
