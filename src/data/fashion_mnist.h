// The built-in dataset: Fashion-MNIST (Debian's dataset-fashion-mnist) laid out like the real
// garment data (DESIGN.md §5, docs/datasets.md), so every command runs with no download.
// Categories are mapped from Fashion-MNIST classes and the pattern tags are drawn synthetically.
#pragma once

#include <cstdint>
#include <filesystem>
#include <opencv2/core.hpp>
#include <string>
#include <vector>

namespace garmentnet {

// Images of one IDX file: `count` images of rows × cols grey bytes, row-major, one after another.
struct IdxImages {
  size_t count = 0;
  int rows = 0;
  int cols = 0;
  std::vector<uint8_t> pixels;

  const uint8_t* image(size_t index) const { return pixels.data() + index * rows * cols; }
};

// Read gzip-compressed (or plain) IDX files, validating magic numbers and sizes; InputErrors name
// the file and what is wrong.
IdxImages read_idx_images(const std::filesystem::path& path);
std::vector<uint8_t> read_idx_labels(const std::filesystem::path& path);

// How a garment is drawn: its colour and which pattern tags are painted inside it.
struct GarmentStyle {
  cv::Vec3b colour{200, 30, 30};  // RGB garment colour
  bool polka_dot = false;         // filled dots on a grid
  bool floral = false;            // small five-petal flowers scattered over the garment
  bool checker = false;           // a checkerboard of tinted squares
};

// Renders one grey Fashion-MNIST image (bright garment on black) as an RGB `side` × `side`
// product photo on a light background, the grey intensity acting as the garment mask and shading.
// `pattern_seed` places the patterns; the same arguments always give the same pixels.
cv::Mat render_garment(const cv::Mat& grey, int side, const GarmentStyle& style,
                       uint64_t pattern_seed);

// The 28 colour names of `color1`, and their RGB values (same order).
const std::vector<std::string>& garment_colour_names();
const std::vector<cv::Vec3b>& garment_colour_values();

struct FashionMnistOptions {
  std::filesystem::path source_dir = "/usr/share/datasets/fashion-mnist";  // the IDX .gz files
  std::filesystem::path out_dir;     // dataset folder to create (must not exist unless overwrite)
  bool overwrite = false;            // replace an existing out_dir (only once the new one is built)
  bool make_target = true;           // garments split in out_dir
  bool make_source = true;           // other five classes in out_dir/source, for pretraining
  bool make_classic = false;         // plain 10-class Fashion-MNIST in out_dir/classic
  int image_size = 64;               // side in pixels of target and source images
  int classic_image_size = 28;       // side in pixels of classic images
  size_t train_size = 6000;          // target rows in data.parquet (before injected duplicates)
  size_t test_size = 1000;           // target rows in test.parquet
  size_t source_size = 6000;         // source split rows
  size_t classic_train_size = 0;     // classic training rows, 0 = all 60000
  size_t classic_test_size = 0;      // classic test rows, 0 = all 10000
  double tag_probability = 0.3;      // chance of each pattern tag, independently per image
  double duplicate_fraction = 0.01;  // exact duplicate rows added to data.parquet (at least 1)
  // Share of data.parquet's rows whose category is replaced by another one at random, recorded in
  // label_noise.parquet (uuid, true cc3, given cc3), to measure how well wrong labels are found.
  double label_noise = 0;
  uint64_t seed = 42;     // same seed ⇒ byte-identical tables and images
  int threads = 0;        // image workers, 0 = all cores
  int jpeg_quality = 92;  // quality of the target/source JPEGs
};

struct SplitSummary {
  std::string name;                 // "target", "source", "classic"
  std::filesystem::path directory;  // where its tables and images/ are
  size_t train_rows = 0;            // rows of data.parquet, duplicates included
  size_t test_rows = 0;             // rows of test.parquet (0 where there is none)
  size_t duplicate_rows = 0;        // injected exact duplicates in data.parquet
  size_t images = 0;                // image files written
};

// Builds the dataset into a staging folder beside out_dir and renames it into place at the end,
// so an interrupted run never leaves something that looks like a complete dataset.
std::vector<SplitSummary> make_fashion_mnist_dataset(const FashionMnistOptions& options);

}  // namespace garmentnet
