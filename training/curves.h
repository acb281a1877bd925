// Training curves as hand-written SVG (no plotting library): line plots of one or more series
// over x (steps or epochs), with axes, ticks, a legend and a title. Used for loss.svg and
// miou.svg in every run folder and embedded in the reproduce report.
#pragma once
#include <string>
#include <vector>

namespace moeseg {

struct CurveSeries {
  std::string name;
  std::vector<double> x, y;
  std::string colour;   // "" = from the palette
};

// The SVG document; series with no points are skipped. Non-finite y values are skipped.
std::string render_svg_plot(const std::string& title, const std::string& x_label, const std::string& y_label,
                            const std::vector<CurveSeries>& series, int width = 640, int height = 360);
// Writes the SVG atomically; throws naming the path.
void write_svg_plot(const std::string& path, const std::string& title, const std::string& x_label,
                    const std::string& y_label, const std::vector<CurveSeries>& series);

// Reads a run's train_log.jsonl and writes <run>/loss.svg and <run>/miou.svg.
void write_run_curves(const std::string& run_dir);

}  // namespace moeseg
