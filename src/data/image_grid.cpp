#include "data/image_grid.h"

#include <algorithm>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "data/image.h"

namespace garmentnet {
namespace {

constexpr int kFont = cv::FONT_HERSHEY_SIMPLEX;

// `text` cut with ".." so that it fits in `width` pixels.
std::string fit_text(std::string text, int width, double scale) {
  int baseline = 0;
  if (cv::getTextSize(text, kFont, scale, 1, &baseline).width <= width) return text;
  while (!text.empty() && cv::getTextSize(text + "..", kFont, scale, 1, &baseline).width > width) {
    text.pop_back();
  }
  return text + "..";
}

// The image scaled to fit a side × side square (never enlarged more than needed to fill it),
// centred on white.
cv::Mat thumbnail(const std::filesystem::path& file, int side) {
  cv::Mat square(side, side, CV_8UC3, cv::Scalar(255, 255, 255));
  cv::Mat rgb;
  try {
    rgb = load_image(file, {}, side);
  } catch (const InputError&) {
    square.setTo(cv::Scalar(200, 200, 200));
    cv::putText(square, "unreadable", {6, side / 2}, kFont, 0.4, cv::Scalar(0, 0, 160), 1,
                cv::LINE_AA);
    return square;
  }
  const double scale =
      std::min(static_cast<double>(side) / rgb.cols, static_cast<double>(side) / rgb.rows);
  const int width = std::max(1, static_cast<int>(rgb.cols * scale));
  const int height = std::max(1, static_cast<int>(rgb.rows * scale));
  cv::Mat resized;
  cv::resize(rgb, resized, {width, height}, 0, 0, scale > 1 ? cv::INTER_NEAREST : cv::INTER_AREA);
  cv::cvtColor(resized, resized, cv::COLOR_RGB2BGR);
  resized.copyTo(square(cv::Rect((side - width) / 2, (side - height) / 2, width, height)));
  return square;
}

}  // namespace

cv::Mat compose_image_grid(const std::vector<GridTile>& tiles, const GridOptions& options) {
  size_t caption_lines = 0;
  for (const auto& tile : tiles) caption_lines = std::max(caption_lines, tile.caption.size());
  int baseline = 0;
  const int line_height =
      cv::getTextSize("Ag", kFont, options.font_scale, 1, &baseline).height + baseline + 3;
  const int tile_width = options.thumbnail + options.padding;
  const int tile_height =
      options.thumbnail + static_cast<int>(caption_lines) * line_height + options.padding;
  const int count = static_cast<int>(tiles.size());
  const int columns = std::max(1, std::min(options.columns, count));
  const int rows = std::max(1, (count + columns - 1) / columns);
  cv::Mat grid(options.padding + rows * tile_height, options.padding + columns * tile_width,
               CV_8UC3, cv::Scalar(255, 255, 255));
  for (int i = 0; i < count; ++i) {
    const GridTile& tile = tiles[static_cast<size_t>(i)];
    const int x = options.padding + (i % columns) * tile_width;
    const int y = options.padding + (i / columns) * tile_height;
    thumbnail(tile.image, options.thumbnail)
        .copyTo(grid(cv::Rect(x, y, options.thumbnail, options.thumbnail)));
    cv::rectangle(grid, cv::Rect(x, y, options.thumbnail, options.thumbnail),
                  cv::Scalar(210, 210, 210));
    for (size_t line = 0; line < tile.caption.size(); ++line) {
      const int text_y = y + options.thumbnail + static_cast<int>(line + 1) * line_height - 2;
      cv::putText(grid, fit_text(tile.caption[line], options.thumbnail, options.font_scale),
                  {x, text_y}, kFont, options.font_scale, cv::Scalar(40, 40, 40), 1, cv::LINE_AA);
    }
  }
  return grid;
}

void write_png(const cv::Mat& bgr, const std::filesystem::path& target) {
  std::vector<uchar> bytes;
  if (!cv::imencode(".png", bgr, bytes)) fail("could not encode {} as PNG", target.string());
  write_file_atomically(
      target, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

}  // namespace garmentnet
