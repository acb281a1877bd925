// The reports `moeseg reproduce` and the studies write: the Markdown table, a self-contained
// HTML page, and colourised label PNGs. The evaluation that fills them is training/evaluation.h.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace moeseg {

// Colourised class map (the palette of data/label_colours.h) as an RGB PNG; `labels` int64
// [H, W]; ignore pixels black.
void write_label_png(const std::string& path, const Tensor& labels, int64_t num_classes);

// The reproduce table: rows = models in order, columns = subsets; values mIoU in percent.
struct ResultRow {
  std::string model;
  std::vector<double> miou;       // per column, NaN = not evaluated
  std::vector<double> miou_std;   // per column, the spread over seeds; empty or NaN = not shown
};
std::string markdown_table(const std::vector<std::string>& columns, const std::vector<ResultRow>& rows);
// A table of text cells: the first `left` columns left-aligned, the others right-aligned.
struct TextTable {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  size_t left = 1;
};
std::string markdown_table(const TextTable& t);

// One part of an HTML page: a heading, a paragraph, tables, SVG files (inlined) and pictures
// (paths relative to the page), each figure with its caption. Empty parts are left out.
struct HtmlSection {
  std::string heading, text;
  std::vector<TextTable> tables;
  std::vector<std::pair<std::string, std::string>> svg_files;   // (caption, file)
  std::vector<std::pair<std::string, std::string>> images;      // (caption, relative path)
};
// A self-contained page of sections (text is HTML-escaped; image paths are used as given).
void write_html_page(const std::string& path, const std::string& title, const std::string& intro,
                     const std::vector<HtmlSection>& sections);

// The reproduce page: title, the mIoU table, the SVG curves (inlined) and example images
// (relative paths), then any further sections.
void write_html_report(const std::string& path, const std::string& title, const std::string& intro,
                       const std::vector<std::string>& columns, const std::vector<ResultRow>& rows,
                       const std::vector<std::pair<std::string, std::string>>& svg_files,
                       const std::vector<std::pair<std::string, std::string>>& images,
                       const std::vector<HtmlSection>& more = {});

}  // namespace moeseg
