// Contact sheets: thumbnails of image files in a grid, with caption lines under each, for the
// sample-image sections of reports.
#pragma once

#include <filesystem>
#include <opencv2/core.hpp>
#include <string>
#include <vector>

namespace garmentnet {

struct GridTile {
  std::filesystem::path image;       // any file decode_image reads
  std::vector<std::string> caption;  // lines under the thumbnail (ASCII; longer lines are cut)
};

struct GridOptions {
  int thumbnail = 128;      // each image is fitted into a square of this side, aspect kept
  int columns = 8;          // tiles per row
  double font_scale = 0.4;  // caption text size (OpenCV Hershey font)
  int padding = 8;          // space around tiles, in pixels
};

// The tiles as one BGR image; a file that cannot be read becomes a grey tile saying so.
cv::Mat compose_image_grid(const std::vector<GridTile>& tiles, const GridOptions& options = {});

// Encodes a BGR image as PNG and writes it atomically.
void write_png(const cv::Mat& bgr, const std::filesystem::path& target);

}  // namespace garmentnet
