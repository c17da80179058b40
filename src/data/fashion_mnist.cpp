#include "data/fashion_mnist.h"

#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <numbers>
#include <numeric>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <random>
#include <set>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/progress.h"
#include "core/thread_pool.h"
#include "data/table.h"
#include "data/task_spec.h"

namespace garmentnet {
namespace fs = std::filesystem;

namespace {

// ---------------------------------------------------------------------------------------------
// IDX files

struct GzipCloser {
  void operator()(gzFile file) const { gzclose(file); }
};
using GzipFile = std::unique_ptr<gzFile_s, GzipCloser>;

GzipFile open_gzip(const fs::path& path) {
  if (!fs::exists(path)) {
    fail(
        "{} does not exist: install the dataset-fashion-mnist package, or pass "
        "--fashion-mnist-dir with the folder holding the four Fashion-MNIST .gz files",
        path.string());
  }
  GzipFile file(gzopen(path.c_str(), "rb"));
  if (!file) fail("cannot open {}: {}", path.string(), std::strerror(errno));
  return file;
}

// Reads exactly `size` bytes; `what` says what they are in the error for a short file.
void read_exact(gzFile file, const fs::path& path, void* out, size_t size, std::string_view what) {
  size_t done = 0;
  while (done < size) {
    const unsigned chunk = static_cast<unsigned>(std::min<size_t>(size - done, 1 << 24));
    const int read = gzread(file, static_cast<char*>(out) + done, chunk);
    if (read < 0) {
      int code = 0;
      fail("{}: corrupt gzip data ({})", path.string(), gzerror(file, &code));
    }
    if (read == 0) {
      int code = 0;
      const char* message = gzerror(file, &code);
      fail("{}: file ends after {} of the {} bytes of {} ({}); the file is truncated, reinstall it",
           path.string(), done, size, what, code == Z_OK ? "end of file" : message);
    }
    done += static_cast<size_t>(read);
  }
}

void expect_end(gzFile file, const fs::path& path) {
  char extra = 0;
  if (gzread(file, &extra, 1) != 0) {
    fail("{}: unexpected data after the items its header announces", path.string());
  }
}

uint32_t big_endian(const std::array<uint8_t, 4>& bytes) {
  return uint32_t{bytes[0]} << 24 | uint32_t{bytes[1]} << 16 | uint32_t{bytes[2]} << 8 | bytes[3];
}

uint32_t read_u32(gzFile file, const fs::path& path, std::string_view what) {
  std::array<uint8_t, 4> bytes{};
  read_exact(file, path, bytes.data(), bytes.size(), what);
  return big_endian(bytes);
}

constexpr uint32_t kIdxImagesMagic = 0x00000803;  // unsigned bytes, 3 dimensions
constexpr uint32_t kIdxLabelsMagic = 0x00000801;  // unsigned bytes, 1 dimension
constexpr uint32_t kIdxMaxItems = 10'000'000;

// ---------------------------------------------------------------------------------------------
// Deterministic randomness that does not depend on the standard library's distributions.

std::mt19937_64 make_rng(uint64_t seed, uint64_t stream, uint64_t index = 0) {
  std::seed_seq sequence{uint32_t(seed), uint32_t(seed >> 32), uint32_t(stream), uint32_t(index),
                         uint32_t(index >> 32)};
  return std::mt19937_64(sequence);
}

double unit_draw(std::mt19937_64& rng) { return double(rng() >> 11) * 0x1.0p-53; }

size_t index_below(std::mt19937_64& rng, size_t count) {
  return static_cast<size_t>(unit_draw(rng) * double(count)) % count;
}

template <typename T>
void shuffle(std::vector<T>& items, std::mt19937_64& rng) {
  for (size_t i = items.size(); i > 1; --i) std::swap(items[i - 1], items[index_below(rng, i)]);
}

// A random (version 4) UUID, shaped like the ids of the real data.
std::string random_uuid(std::mt19937_64& rng) {
  const uint64_t high = (rng() & ~uint64_t{0xF000}) | 0x4000;
  const uint64_t low = (rng() & ~(uint64_t{3} << 62)) | (uint64_t{2} << 62);
  const std::string hex = fmt::format("{:016x}{:016x}", high, low);
  return fmt::format("{}-{}-{}-{}-{}", hex.substr(0, 8), hex.substr(8, 4), hex.substr(12, 4),
                     hex.substr(16, 4), hex.substr(20, 12));
}

// ---------------------------------------------------------------------------------------------
// Class mappings

// Stream ids keep every random choice independent of the others.
enum Stream : uint64_t {
  kTargetTrain = 1,
  kTargetTest,
  kSource,
  kClassicTrain,
  kClassicTest,
  kDuplicates,
  kExamplePredictions,
  kPatterns,
  kLabelNoise,
};

// Fashion-MNIST's class names, by label.
const std::array<const char*, 10> kFashionMnistClasses = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

struct ClassMapping {
  int fashion_mnist_label;
  const char* category;
};

// A synthetic stand-in: Fashion-MNIST has no blouses or mini dresses, so each upper-body/dress
// class takes the name of the real category it looks most like.
const std::array<ClassMapping, 5> kTargetMapping = {
    {{0, "TANK_TOPS"}, {2, "BLOUSES"}, {3, "CASUAL_DRESSES"}, {4, "MINI_DRESSES"}, {6, "SHIRTS"}}};
const std::array<ClassMapping, 5> kSourceMapping = {
    {{1, "TROUSERS"}, {5, "SANDALS"}, {7, "SNEAKERS"}, {8, "BAGS"}, {9, "ANKLE_BOOTS"}}};

const char* kTagNames[3] = {"polka dot", "floral", "checker"};

// ---------------------------------------------------------------------------------------------
// Drawing

double luminance(const cv::Vec3b& rgb) {
  return (0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]) / 255.0;
}

// A palette colour clearly lighter or darker than `base`, so a pattern stands out on it.
cv::Vec3b contrasting_colour(const cv::Vec3b& base, std::mt19937_64& rng,
                             const cv::Vec3b* avoid = nullptr) {
  std::vector<cv::Vec3b> candidates;
  for (const auto& colour : garment_colour_values()) {
    const bool distinct = avoid == nullptr || cv::norm(colour, *avoid, cv::NORM_L1) > 150;
    if (std::abs(luminance(colour) - luminance(base)) >= 0.35 && distinct) {
      candidates.push_back(colour);
    }
  }
  if (candidates.empty()) {
    return luminance(base) > 0.5 ? cv::Vec3b(15, 15, 15) : cv::Vec3b(250, 250, 250);
  }
  return candidates[index_below(rng, candidates.size())];
}

cv::Scalar to_scalar(const cv::Vec3b& rgb) { return cv::Scalar(rgb[0], rgb[1], rgb[2]); }

// OpenCV draws with sub-pixel precision when coordinates are given in 1/16 pixel.
constexpr int kSubpixelShift = 4;
constexpr double kSubpixel = 1 << kSubpixelShift;

void fill_circle(cv::Mat& layer, double x, double y, double radius, const cv::Vec3b& colour) {
  cv::circle(layer, cv::Point(int(std::lround(x * kSubpixel)), int(std::lround(y * kSubpixel))),
             int(std::lround(radius * kSubpixel)), to_scalar(colour), cv::FILLED, cv::LINE_AA,
             kSubpixelShift);
}

void draw_checks(cv::Mat& layer, const cv::Vec3b& base, const cv::Vec3b& contrast, double scale,
                 std::mt19937_64& rng) {
  cv::Vec3b tint;
  for (int c = 0; c < 3; ++c) {
    tint[c] = cv::saturate_cast<uint8_t>(0.3 * base[c] + 0.7 * contrast[c]);
  }
  const int cell = std::max(3, int(std::lround(7 * scale)));
  const int offset_x = int(index_below(rng, size_t(cell)));
  const int offset_y = int(index_below(rng, size_t(cell)));
  for (int row = -1; row * cell < layer.rows; ++row) {
    for (int column = -1; column * cell < layer.cols; ++column) {
      if ((row + column) % 2 != 0) continue;
      cv::rectangle(layer, cv::Rect(column * cell + offset_x, row * cell + offset_y, cell, cell),
                    to_scalar(tint), cv::FILLED);
    }
  }
}

void draw_dots(cv::Mat& layer, const cv::Vec3b& colour, double scale, std::mt19937_64& rng) {
  const double spacing = std::max(5.0, 11.0 * scale);
  const double radius = std::max(1.3, 2.6 * scale);
  const double phase_x = unit_draw(rng) * spacing;
  const double phase_y = unit_draw(rng) * spacing;
  int row = 0;
  for (double y = phase_y - spacing; y < layer.rows + spacing; y += spacing, ++row) {
    const double stagger = row % 2 == 0 ? 0 : spacing / 2;  // dots in a staggered grid
    for (double x = phase_x - spacing + stagger; x < layer.cols + spacing; x += spacing) {
      fill_circle(layer, x, y, radius, colour);
    }
  }
}

void draw_flowers(cv::Mat& layer, const cv::Vec3b& petals, double scale, std::mt19937_64& rng) {
  // The centre stands out from the petals, which is what tells a flower from a dot.
  const cv::Vec3b centre =
      luminance(petals) > 0.6 ? cv::Vec3b(150, 40, 20) : cv::Vec3b(255, 215, 0);
  const double spacing = std::max(8.0, 17.0 * scale);
  const double petal_radius = std::max(1.0, 2.0 * scale);
  const double petal_distance = std::max(1.5, 3.0 * scale);
  const double phase_x = unit_draw(rng) * spacing;
  const double phase_y = unit_draw(rng) * spacing;
  for (double grid_y = phase_y - spacing; grid_y < layer.rows + spacing; grid_y += spacing) {
    for (double grid_x = phase_x - spacing; grid_x < layer.cols + spacing; grid_x += spacing) {
      // Jitter and turn each flower so they look scattered rather than printed on a grid.
      const double x = grid_x + (unit_draw(rng) - 0.5) * spacing * 0.5;
      const double y = grid_y + (unit_draw(rng) - 0.5) * spacing * 0.5;
      const double turn = unit_draw(rng) * 2 * std::numbers::pi;
      for (int petal = 0; petal < 5; ++petal) {
        const double angle = turn + petal * 2 * std::numbers::pi / 5;
        fill_circle(layer, x + petal_distance * std::cos(angle),
                    y + petal_distance * std::sin(angle), petal_radius, petals);
      }
      fill_circle(layer, x, y, petal_radius * 0.9, centre);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Building

struct LabelledImages {
  IdxImages images;
  std::vector<uint8_t> labels;
};

LabelledImages load_pair(const fs::path& dir, const std::string& prefix) {
  LabelledImages data;
  const fs::path images_path = dir / (prefix + "-images-idx3-ubyte.gz");
  const fs::path labels_path = dir / (prefix + "-labels-idx1-ubyte.gz");
  data.images = read_idx_images(images_path);
  data.labels = read_idx_labels(labels_path);
  if (data.images.count != data.labels.size()) {
    fail("{} holds {} images but {} holds {} labels; the files do not belong together",
         images_path.string(), data.images.count, labels_path.string(), data.labels.size());
  }
  if (data.images.rows != 28 || data.images.cols != 28) {
    fail("{}: images are {}×{}, Fashion-MNIST's are 28×28", images_path.string(), data.images.cols,
         data.images.rows);
  }
  return data;
}

// One example of a split: which Fashion-MNIST image it shows and its labels.
struct Example {
  std::string uuid;
  size_t image_index = 0;
  std::string category;
  int colour = 0;                        // index into the palette; -1 for grey (classic)
  std::array<int64_t, 3> tags{0, 0, 0};  // polka dot, floral, checker
};

class UuidSource {
 public:
  std::string next(std::mt19937_64& rng) {
    for (;;) {
      std::string uuid = random_uuid(rng);
      if (used_.insert(uuid).second) return uuid;
    }
  }

 private:
  std::set<std::string> used_;
};

// Picks `count` random images whose Fashion-MNIST label is mapped, and labels them.
std::vector<Example> plan_examples(const LabelledImages& data, const ClassMapping* mapping,
                                   size_t mapping_size, size_t count, bool colour, bool tags,
                                   const FashionMnistOptions& options, Stream stream,
                                   UuidSource& uuids, std::string_view what) {
  std::array<const char*, 10> category_of{};
  for (size_t m = 0; m < mapping_size; ++m) {
    category_of[mapping[m].fashion_mnist_label] = mapping[m].category;
  }
  std::vector<size_t> candidates;
  for (size_t i = 0; i < data.labels.size(); ++i) {
    if (category_of[data.labels[i]] != nullptr) candidates.push_back(i);
  }
  if (count > candidates.size()) {
    fail("{}: asked for {} images but the Fashion-MNIST file has only {} of these classes", what,
         count, candidates.size());
  }
  std::mt19937_64 rng = make_rng(options.seed, stream);
  shuffle(candidates, rng);
  std::vector<Example> examples(count);
  for (size_t i = 0; i < count; ++i) {
    Example& example = examples[i];
    example.uuid = uuids.next(rng);
    example.image_index = candidates[i];
    example.category = category_of[data.labels[candidates[i]]];
    example.colour = colour ? int(index_below(rng, garment_colour_names().size())) : -1;
    for (auto& tag : example.tags) tag = tags && unit_draw(rng) < options.tag_probability;
  }
  return examples;
}

cv::Mat render_example(const Example& example, const LabelledImages& data, int side,
                       uint64_t pattern_seed) {
  const cv::Mat grey(data.images.rows, data.images.cols, CV_8UC1,
                     const_cast<uint8_t*>(data.images.image(example.image_index)));
  if (example.colour < 0) {
    if (side == grey.cols) return grey.clone();
    cv::Mat resized;
    cv::resize(grey, resized, cv::Size(side, side), 0, 0, cv::INTER_CUBIC);
    return resized;
  }
  GarmentStyle style;
  style.colour = garment_colour_values()[size_t(example.colour)];
  style.polka_dot = example.tags[0] != 0;
  style.floral = example.tags[1] != 0;
  style.checker = example.tags[2] != 0;
  return render_garment(grey, side, style, pattern_seed);
}

void write_bytes(const fs::path& path, const std::vector<uchar>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  out.close();
  if (!out) fail("cannot write {}: {}", path.string(), std::strerror(errno));
}

// Renders and writes every example's image, in parallel; each image depends only on its own
// example and seed, so the output is the same whatever the scheduling.
void write_images(const std::vector<Example>& examples, const LabelledImages& data, int side,
                  const fs::path& images_dir, const std::string& extension,
                  const FashionMnistOptions& options, Stream stream, ThreadPool& pool,
                  const std::string& label) {
  fs::create_directories(images_dir);
  Progress progress(label, int64_t(examples.size()), "images");
  const std::vector<int> params =
      extension == ".png" ? std::vector<int>{cv::IMWRITE_PNG_COMPRESSION, 9}
                          : std::vector<int>{cv::IMWRITE_JPEG_QUALITY, options.jpeg_quality};
  pool.parallel_for(examples.size(), [&](size_t i) {
    const uint64_t pattern_seed = make_rng(options.seed, kPatterns + stream * 16, i)();
    cv::Mat image = render_example(examples[i], data, side, pattern_seed);
    if (image.channels() == 3) cv::cvtColor(image, image, cv::COLOR_RGB2BGR);
    std::vector<uchar> bytes;
    if (!cv::imencode(extension, image, bytes, params)) {
      fail("cannot encode image {} as {}", examples[i].uuid, extension);
    }
    write_bytes(images_dir / (examples[i].uuid + extension), bytes);
    progress.advance();
  });
}

Column string_column(std::string name, const std::vector<Example>& examples,
                     const std::function<std::string(const Example&)>& get) {
  Column column{std::move(name), ColumnType::String, {}};
  column.values.reserve(examples.size());
  for (const auto& example : examples) column.values.emplace_back(get(example));
  return column;
}

Column int_column(std::string name, const std::vector<Example>& examples,
                  const std::function<int64_t(const Example&)>& get) {
  Column column{std::move(name), ColumnType::Int64, {}};
  column.values.reserve(examples.size());
  for (const auto& example : examples) column.values.emplace_back(get(example));
  return column;
}

Table labels_table(const std::vector<Example>& examples, const std::string& category_column,
                   bool with_colour, bool with_tags) {
  Table table;
  table.add_column(string_column("uuid", examples, [](const Example& e) { return e.uuid; }));
  table.add_column(
      string_column(category_column, examples, [](const Example& e) { return e.category; }));
  if (with_colour) {
    table.add_column(string_column("color1", examples, [](const Example& e) {
      return garment_colour_names()[size_t(e.colour)];
    }));
  }
  if (with_tags) {
    for (size_t t = 0; t < 3; ++t) {
      table.add_column(
          int_column(kTagNames[t], examples, [t](const Example& e) { return e.tags[t]; }));
    }
  }
  return table;
}

Table ids_table(const std::vector<Example>& examples) {
  Table table;
  table.add_column(string_column("uuid", examples, [](const Example& e) { return e.uuid; }));
  return table;
}

// Real label files contain exact duplicate rows; the loader must cope, so the built-in data has
// them too. Copies go to random positions.
std::vector<Example> with_duplicates(const std::vector<Example>& examples, size_t count,
                                     std::mt19937_64& rng) {
  std::vector<Example> rows = examples;
  std::vector<size_t> picks(examples.size());
  for (size_t i = 0; i < picks.size(); ++i) picks[i] = i;
  shuffle(picks, rng);
  for (size_t d = 0; d < count; ++d) {
    const size_t position = index_below(rng, rows.size() + 1);
    rows.insert(rows.begin() + std::ptrdiff_t(position), examples[picks[d]]);
  }
  return rows;
}

std::vector<std::string> sorted_categories(const std::array<ClassMapping, 5>& mapping) {
  std::vector<std::string> names;
  for (const auto& entry : mapping) names.emplace_back(entry.category);
  std::sort(names.begin(), names.end());
  return names;
}

TaskSpec single_head_task(const std::string& column, std::vector<std::string> classes,
                          const std::string& image_pattern) {
  TaskSpec spec;
  spec.image_pattern = image_pattern;
  spec.heads.push_back(HeadSpec{
      .name = column, .kind = HeadKind::Softmax, .column = column, .classes = std::move(classes)});
  return spec;
}

void write_task(const TaskSpec& spec, const fs::path& dir) {
  write_file_atomically(dir / "task.json", spec.to_json().dump(2) + "\n");
}

// A picture of the first examples with their labels, for a person to check the data by eye.
void write_contact_sheet(const std::vector<Example>& examples, const LabelledImages& data,
                         const FashionMnistOptions& options, const fs::path& path) {
  constexpr int kColumns = 6;
  constexpr int kRows = 4;
  constexpr int kTile = 128;
  constexpr int kCaption = 46;
  constexpr int kGap = 14;  // room for the longest caption
  cv::Mat sheet(kRows * (kTile + kCaption), kColumns * (kTile + kGap), CV_8UC3,
                cv::Scalar::all(255));
  const size_t shown = std::min<size_t>(examples.size(), kColumns * kRows);
  for (size_t i = 0; i < shown; ++i) {
    const Example& example = examples[i];
    const uint64_t pattern_seed = make_rng(options.seed, kPatterns + kTargetTrain * 16, i)();
    cv::Mat image = render_example(example, data, options.image_size, pattern_seed);
    const int x = int(i % kColumns) * (kTile + kGap);
    const int y = int(i / kColumns) * (kTile + kCaption);
    cv::resize(image, sheet(cv::Rect(x, y, kTile, kTile)), cv::Size(kTile, kTile), 0, 0,
               cv::INTER_NEAREST);
    std::string tags;
    for (size_t t = 0; t < 3; ++t) {
      if (example.tags[t] != 0) tags += (tags.empty() ? "" : "+") + std::string(kTagNames[t]);
    }
    const std::array<std::string, 3> lines = {example.category,
                                              garment_colour_names()[size_t(example.colour)],
                                              tags.empty() ? "(no tag)" : tags};
    for (size_t l = 0; l < lines.size(); ++l) {
      cv::putText(sheet, lines[l], cv::Point(x + 3, y + kTile + 13 + int(l) * 14),
                  cv::FONT_HERSHEY_PLAIN, 0.85, cv::Scalar::all(0), 1, cv::LINE_AA);
    }
  }
  cv::cvtColor(sheet, sheet, cv::COLOR_RGB2BGR);
  std::vector<uchar> bytes;
  cv::imencode(".png", sheet, bytes);
  write_file_atomically(
      path, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

// Gives a `share` of the examples, chosen at random, another category than their own.
void flip_categories(std::vector<Example>& examples, const std::vector<std::string>& classes,
                     double share, std::mt19937_64 rng) {
  const auto count = static_cast<size_t>(std::llround(share * double(examples.size())));
  std::vector<size_t> order(examples.size());
  std::iota(order.begin(), order.end(), size_t{0});
  shuffle(order, rng);
  for (size_t i = 0; i < count; ++i) {
    Example& example = examples[order[i]];
    std::vector<std::string> others;
    for (const std::string& name : classes)
      if (name != example.category) others.push_back(name);
    example.category = others[index_below(rng, others.size())];
  }
}

// label_noise.parquet: the examples whose category was changed, with the true and given one.
Table label_noise_table(const std::vector<Example>& truth, const std::vector<Example>& given) {
  Column ids{"uuid", ColumnType::String, {}}, true_cc3{"true_cc3", ColumnType::String, {}},
      given_cc3{"given_cc3", ColumnType::String, {}};
  for (size_t i = 0; i < truth.size(); ++i) {
    if (truth[i].category == given[i].category) continue;
    ids.values.emplace_back(truth[i].uuid);
    true_cc3.values.emplace_back(truth[i].category);
    given_cc3.values.emplace_back(given[i].category);
  }
  Table table;
  for (Column* column : {&ids, &true_cc3, &given_cc3}) table.add_column(std::move(*column));
  return table;
}

SplitSummary build_target(const LabelledImages& train, const LabelledImages& test,
                          const FashionMnistOptions& options, const fs::path& dir,
                          UuidSource& uuids, ThreadPool& pool) {
  auto train_examples =
      plan_examples(train, kTargetMapping.data(), kTargetMapping.size(), options.train_size, true,
                    true, options, kTargetTrain, uuids, "--train-size");
  const auto test_examples =
      plan_examples(test, kTargetMapping.data(), kTargetMapping.size(), options.test_size, true,
                    true, options, kTargetTest, uuids, "--test-size");
  write_images(train_examples, train, options.image_size, dir / "images", ".jpeg", options,
               kTargetTrain, pool, "target train");
  write_images(test_examples, test, options.image_size, dir / "images", ".jpeg", options,
               kTargetTest, pool, "target test");

  const TaskSpec spec = TaskSpec::garments();
  const auto& classes = spec.heads.front().classes;
  const std::vector<Example> truth = train_examples;
  flip_categories(train_examples, classes, options.label_noise,
                  make_rng(options.seed, kLabelNoise));
  std::mt19937_64 duplicate_rng = make_rng(options.seed, kDuplicates);
  // At least one when asked for any, so that even a tiny dataset exercises duplicate handling.
  const size_t duplicates =
      options.duplicate_fraction > 0
          ? std::max<size_t>(
                1, size_t(std::llround(double(train_examples.size()) * options.duplicate_fraction)))
          : 0;
  const auto rows = with_duplicates(train_examples, duplicates, duplicate_rng);

  Table predictions = ids_table(test_examples);
  std::mt19937_64 prediction_rng = make_rng(options.seed, kExamplePredictions);
  std::vector<Value> first;
  std::vector<Value> second;
  for (const auto& example : test_examples) {
    const auto index =
        int64_t(std::find(classes.begin(), classes.end(), example.category) - classes.begin());
    first.emplace_back(index);
    second.emplace_back(int64_t((index + 1 + int64_t(index_below(prediction_rng, 4))) % 5));
  }
  predictions.add_column(Column{"category1", ColumnType::Int64, std::move(first)});
  predictions.add_column(Column{"category2", ColumnType::Int64, std::move(second)});
  for (size_t t = 0; t < 3; ++t) {
    predictions.add_column(
        int_column(kTagNames[t], test_examples, [t](const Example& e) { return e.tags[t]; }));
  }

  write_contact_sheet(train_examples, train, options, dir / "samples.png");
  write_task(spec, dir);
  write_table(labels_table(test_examples, "cc3", true, true), dir / "test_labels.parquet");
  write_table(ids_table(test_examples), dir / "test.parquet");
  write_table(predictions, dir / "example_predictions.parquet");
  write_table(labels_table(rows, "cc3", true, true), dir / "data.parquet");
  if (options.label_noise > 0)
    write_table(label_noise_table(truth, train_examples), dir / "label_noise.parquet");
  return {"target",    dir,
          rows.size(), test_examples.size(),
          duplicates,  train_examples.size() + test_examples.size()};
}

SplitSummary build_source(const LabelledImages& train, const FashionMnistOptions& options,
                          const fs::path& dir, UuidSource& uuids, ThreadPool& pool) {
  const auto examples =
      plan_examples(train, kSourceMapping.data(), kSourceMapping.size(), options.source_size, true,
                    false, options, kSource, uuids, "--source-size");
  write_images(examples, train, options.image_size, dir / "images", ".jpeg", options, kSource, pool,
               "source");
  write_task(single_head_task("category", sorted_categories(kSourceMapping), "{id}.jpeg"), dir);
  write_table(labels_table(examples, "category", true, false), dir / "data.parquet");
  return {"source", dir, examples.size(), 0, 0, examples.size()};
}

SplitSummary build_classic(const LabelledImages& train, const LabelledImages& test,
                           const FashionMnistOptions& options, const fs::path& dir,
                           UuidSource& uuids, ThreadPool& pool) {
  std::array<ClassMapping, 10> mapping{};
  for (int label = 0; label < 10; ++label)
    mapping[size_t(label)] = {label, kFashionMnistClasses[size_t(label)]};
  const size_t train_size =
      options.classic_train_size == 0 ? train.labels.size() : options.classic_train_size;
  const size_t test_size =
      options.classic_test_size == 0 ? test.labels.size() : options.classic_test_size;
  const auto train_examples =
      plan_examples(train, mapping.data(), mapping.size(), train_size, false, false, options,
                    kClassicTrain, uuids, "--classic-train-size");
  const auto test_examples =
      plan_examples(test, mapping.data(), mapping.size(), test_size, false, false, options,
                    kClassicTest, uuids, "--classic-test-size");
  // Lossless PNG: JPEG artefacts would be a large part of a 28-pixel grey image.
  write_images(train_examples, train, options.classic_image_size, dir / "images", ".png", options,
               kClassicTrain, pool, "classic train");
  write_images(test_examples, test, options.classic_image_size, dir / "images", ".png", options,
               kClassicTest, pool, "classic test");
  std::vector<std::string> classes(kFashionMnistClasses.begin(), kFashionMnistClasses.end());
  std::sort(classes.begin(), classes.end());
  write_task(single_head_task("label", classes, "{id}.png"), dir);
  write_table(labels_table(test_examples, "label", false, false), dir / "test_labels.parquet");
  write_table(ids_table(test_examples), dir / "test.parquet");
  write_table(labels_table(train_examples, "label", false, false), dir / "data.parquet");
  return {"classic",
          dir,
          train_examples.size(),
          test_examples.size(),
          0,
          train_examples.size() + test_examples.size()};
}

void validate(const FashionMnistOptions& options) {
  if (options.out_dir.empty()) fail("--out is required: the folder to create the dataset in");
  if (!options.make_target && !options.make_source && !options.make_classic) {
    fail("--variants names no variant: use target, source and/or classic");
  }
  if (options.image_size < 16 || options.image_size > 512) {
    fail("--image-size {} is out of range: use 16 to 512 pixels", options.image_size);
  }
  if (options.classic_image_size < 8 || options.classic_image_size > 512) {
    fail("--classic-image-size {} is out of range: use 8 to 512 pixels",
         options.classic_image_size);
  }
  if (options.make_target && (options.train_size == 0 || options.test_size == 0)) {
    fail("--train-size and --test-size must be at least 1");
  }
  if (options.make_source && options.source_size == 0) fail("--source-size must be at least 1");
  if (!(options.tag_probability >= 0 && options.tag_probability <= 1)) {
    fail("tag probability {} must be in [0, 1]", options.tag_probability);
  }
  if (!(options.label_noise >= 0 && options.label_noise < 1)) {
    fail("--label-noise {} must be in [0, 1)", options.label_noise);
  }
  if (!(options.duplicate_fraction >= 0 && options.duplicate_fraction <= 1)) {
    fail("duplicate fraction {} must be in [0, 1]", options.duplicate_fraction);
  }
  if (options.jpeg_quality < 1 || options.jpeg_quality > 100) {
    fail("JPEG quality {} must be in 1..100", options.jpeg_quality);
  }
}

// A folder that is removed when the build fails before it is renamed into place.
class StagingDir {
 public:
  explicit StagingDir(const fs::path& target) {
    std::random_device random;
    path_ = target.parent_path() /
            fmt::format("{}.tmp-{}-{:x}", target.filename().string(), ::getpid(), random());
    fs::create_directories(path_);
  }
  ~StagingDir() {
    if (!released_) {
      std::error_code ignored;
      fs::remove_all(path_, ignored);
    }
  }
  StagingDir(const StagingDir&) = delete;
  StagingDir& operator=(const StagingDir&) = delete;

  const fs::path& path() const { return path_; }

  // Puts the staged folder at `target`, replacing an old one only after the new one is in place
  // beside it.
  void commit(const fs::path& target) {
    fs::path old;
    if (fs::exists(target)) {
      old = path_;
      old += ".old";
      fs::rename(target, old);
    }
    fs::rename(path_, target);
    released_ = true;
    if (!old.empty()) fs::remove_all(old);
  }

 private:
  fs::path path_;
  bool released_ = false;
};

fs::path normalised_target(const fs::path& out_dir) {
  fs::path target = fs::absolute(out_dir).lexically_normal();
  if (target.filename().empty()) target = target.parent_path();  // "data/garments/"
  return target;
}

void check_target_replaceable(const fs::path& target, bool overwrite) {
  if (!fs::exists(target)) return;
  if (!overwrite) {
    fail("{} already exists: pass --overwrite to replace it, or choose another --out",
         target.string());
  }
  if (!fs::is_directory(target)) fail("{} exists and is not a folder", target.string());
  // Only replace what this command made (or an empty folder), never an unrelated folder.
  if (!fs::is_empty(target) && !fs::exists(target / "task.json")) {
    fail("{} is not a dataset made by make-dataset (no task.json); refusing to replace it",
         target.string());
  }
}

}  // namespace

IdxImages read_idx_images(const fs::path& path) {
  GzipFile file = open_gzip(path);
  const uint32_t magic = read_u32(file.get(), path, "the header");
  if (magic != kIdxImagesMagic) {
    fail("{}: not an IDX image file (magic number {:#010x}, expected {:#010x})", path.string(),
         magic, kIdxImagesMagic);
  }
  IdxImages images;
  const uint32_t count = read_u32(file.get(), path, "the header");
  const uint32_t rows = read_u32(file.get(), path, "the header");
  const uint32_t cols = read_u32(file.get(), path, "the header");
  if (count > kIdxMaxItems || rows == 0 || cols == 0 || rows > 1024 || cols > 1024) {
    fail("{}: implausible IDX header ({} images of {}×{})", path.string(), count, cols, rows);
  }
  images.count = count;
  images.rows = int(rows);
  images.cols = int(cols);
  images.pixels.resize(size_t(count) * rows * cols);
  read_exact(file.get(), path, images.pixels.data(), images.pixels.size(),
             fmt::format("{} images of {}×{}", count, cols, rows));
  expect_end(file.get(), path);
  return images;
}

std::vector<uint8_t> read_idx_labels(const fs::path& path) {
  GzipFile file = open_gzip(path);
  const uint32_t magic = read_u32(file.get(), path, "the header");
  if (magic != kIdxLabelsMagic) {
    fail("{}: not an IDX label file (magic number {:#010x}, expected {:#010x})", path.string(),
         magic, kIdxLabelsMagic);
  }
  const uint32_t count = read_u32(file.get(), path, "the header");
  if (count > kIdxMaxItems) fail("{}: implausible IDX header ({} labels)", path.string(), count);
  std::vector<uint8_t> labels(count);
  read_exact(file.get(), path, labels.data(), labels.size(), fmt::format("{} labels", count));
  expect_end(file.get(), path);
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] > 9) {
      fail("{}: label {} of item {} is not a Fashion-MNIST class (0-9)", path.string(),
           int(labels[i]), i);
    }
  }
  return labels;
}

const std::vector<std::string>& garment_colour_names() {
  static const std::vector<std::string> names = {
      "black",      "white",    "grey",  "anthracite", "beige", "brown",     "camel",
      "red",        "bordeaux", "pink",  "rose",       "coral", "orange",    "yellow",
      "mustard",    "khaki",    "olive", "green",      "mint",  "turquoise", "petrol",
      "light blue", "blue",     "navy",  "purple",     "lilac", "cream",     "silver"};
  return names;
}

const std::vector<cv::Vec3b>& garment_colour_values() {
  static const std::vector<cv::Vec3b> values = {
      {20, 20, 20},    {250, 250, 250}, {150, 150, 150}, {60, 63, 66},    {225, 205, 170},
      {120, 75, 40},   {193, 154, 107}, {200, 30, 35},   {110, 20, 40},   {245, 150, 190},
      {230, 110, 140}, {250, 120, 90},  {245, 140, 20},  {250, 220, 40},  {215, 170, 30},
      {170, 160, 110}, {110, 120, 40},  {40, 150, 60},   {160, 230, 190}, {40, 200, 200},
      {20, 95, 110},   {150, 200, 240}, {30, 90, 210},   {25, 35, 90},    {120, 50, 160},
      {195, 165, 225}, {250, 245, 220}, {195, 198, 202}};
  return values;
}

cv::Mat render_garment(const cv::Mat& grey, int side, const GarmentStyle& style,
                       uint64_t pattern_seed) {
  if (grey.type() != CV_8UC1 || grey.empty() || side < 8) {
    throw std::invalid_argument("render_garment: expects a grey 8-bit image and side >= 8");
  }
  cv::Mat mask;
  cv::resize(grey, mask, cv::Size(side, side), 0, 0, cv::INTER_CUBIC);
  double brightest = 0;
  cv::minMaxLoc(mask, nullptr, &brightest);
  brightest = std::max(brightest, 1.0);

  const double scale = side / 64.0;
  std::mt19937_64 rng = make_rng(pattern_seed, kPatterns);
  cv::Mat layer(side, side, CV_8UC3, to_scalar(style.colour));
  // Checks first: dots and flowers are printed over them.
  const cv::Vec3b check_colour = contrasting_colour(style.colour, rng);
  const cv::Vec3b dot_colour = contrasting_colour(style.colour, rng);
  // Flowers over dots in the same colour would hide the dots.
  const cv::Vec3b petal_colour =
      contrasting_colour(style.colour, rng, style.polka_dot ? &dot_colour : nullptr);
  if (style.checker) draw_checks(layer, style.colour, check_colour, scale, rng);
  if (style.polka_dot) draw_dots(layer, dot_colour, scale, rng);
  if (style.floral) draw_flowers(layer, petal_colour, scale, rng);

  // Fashion-MNIST garments are bright on black: intensity gives the garment's outline (alpha)
  // and its folds and seams (shade), which the colour and patterns are multiplied by.
  const cv::Vec3f background(243, 243, 243);
  cv::Mat out(side, side, CV_8UC3);
  for (int y = 0; y < side; ++y) {
    const uint8_t* intensity = mask.ptr<uint8_t>(y);
    const cv::Vec3b* fabric = layer.ptr<cv::Vec3b>(y);
    cv::Vec3b* pixel = out.ptr<cv::Vec3b>(y);
    for (int x = 0; x < side; ++x) {
      const float alpha = std::clamp((intensity[x] - 8.0f) / 40.0f, 0.0f, 1.0f);
      const float shade = 0.5f + 0.5f * float(intensity[x] / brightest);
      for (int c = 0; c < 3; ++c) {
        pixel[x][c] = cv::saturate_cast<uint8_t>((1 - alpha) * background[c] +
                                                 alpha * shade * float(fabric[x][c]));
      }
    }
  }
  return out;
}

std::vector<SplitSummary> make_fashion_mnist_dataset(const FashionMnistOptions& options) {
  validate(options);
  const fs::path target = normalised_target(options.out_dir);
  check_target_replaceable(target, options.overwrite);

  const LabelledImages train = load_pair(options.source_dir, "train");
  const LabelledImages test = load_pair(options.source_dir, "t10k");

  StagingDir staging(target);
  ThreadPool pool(options.threads > 0 ? options.threads : default_thread_count());
  UuidSource uuids;
  std::vector<SplitSummary> summaries;
  if (options.make_target) {
    summaries.push_back(build_target(train, test, options, staging.path(), uuids, pool));
  }
  if (options.make_source) {
    summaries.push_back(build_source(train, options, staging.path() / "source", uuids, pool));
  }
  if (options.make_classic) {
    summaries.push_back(
        build_classic(train, test, options, staging.path() / "classic", uuids, pool));
  }
  for (auto& summary : summaries) {
    const fs::path inside = summary.directory.lexically_relative(staging.path());
    summary.directory = inside == "." ? target : target / inside;
  }
  staging.commit(target);
  return summaries;
}

}  // namespace garmentnet
