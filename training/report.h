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
// A self-contained HTML page: title, the table, the SVG curves (inlined) and example images
// (relative paths).
void write_html_report(const std::string& path, const std::string& title, const std::string& intro,
                       const std::vector<std::string>& columns, const std::vector<ResultRow>& rows,
                       const std::vector<std::pair<std::string, std::string>>& svg_files,
                       const std::vector<std::pair<std::string, std::string>>& images);

}  // namespace moeseg
