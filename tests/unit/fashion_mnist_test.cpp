#include "data/fashion_mnist.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <memory>
#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>
#include <set>

#include "core/atomic_file.h"
#include "core/error.h"
#include "data/dataset.h"
#include "data/image.h"
#include "data/table.h"
#include "data/task_spec.h"
#include "test_support.h"

namespace garmentnet {
namespace {
namespace fs = std::filesystem;

FashionMnistOptions small_options(const fs::path& out, uint64_t seed = 7) {
  FashionMnistOptions options;
  options.out_dir = out;
  options.train_size = 100;
  options.test_size = 30;
  options.source_size = 40;
  options.make_classic = true;
  options.classic_train_size = 40;
  options.classic_test_size = 20;
  options.seed = seed;
  return options;
}

std::string literal(const fs::path& path) { return sql_string_literal(path.string()); }

int64_t count_of(const std::string& sql) {
  return std::get<int64_t>(query_sql(sql).columns().front().values.front());
}

std::vector<std::pair<std::string, ColumnType>> schema(const fs::path& path) {
  std::vector<std::pair<std::string, ColumnType>> columns;
  const Table table = read_table(path);
  for (const auto& column : table.columns()) columns.emplace_back(column.name, column.type);
  return columns;
}

std::vector<std::string> strings(const Table& table, const std::string& name) {
  std::vector<std::string> values;
  for (const auto& value : table.column(name).values)
    values.push_back(std::get<std::string>(value));
  return values;
}

// Every file under `dir` (relative path → bytes).
std::map<std::string, std::string> files_under(const fs::path& dir) {
  std::map<std::string, std::string> files;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (entry.is_regular_file()) {
      files[entry.path().lexically_relative(dir).string()] = read_file(entry.path());
    }
  }
  return files;
}

// One dataset shared by the read-only tests, built once (building reads 55 MB of gzip).
class FashionMnistTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = std::make_unique<testing::TempDir>();
    summaries_ = make_fashion_mnist_dataset(small_options(root()));
  }
  static void TearDownTestSuite() { dir_.reset(); }
  static fs::path root() { return dir_->path() / "garments"; }

  static std::unique_ptr<testing::TempDir> dir_;
  static std::vector<SplitSummary> summaries_;
};
std::unique_ptr<testing::TempDir> FashionMnistTest::dir_;
std::vector<SplitSummary> FashionMnistTest::summaries_;

TEST_F(FashionMnistTest, WritesTheRealDataLayout) {
  using enum ColumnType;
  const std::vector<std::pair<std::string, ColumnType>> labels = {
      {"uuid", String},     {"cc3", String},   {"color1", String},
      {"polka dot", Int64}, {"floral", Int64}, {"checker", Int64}};
  EXPECT_EQ(schema(root() / "data.parquet"), labels);
  EXPECT_EQ(schema(root() / "test_labels.parquet"), labels);
  EXPECT_EQ(schema(root() / "test.parquet"), (decltype(labels){{"uuid", String}}));
  EXPECT_EQ(schema(root() / "example_predictions.parquet"), (decltype(labels){{"uuid", String},
                                                                              {"category1", Int64},
                                                                              {"category2", Int64},
                                                                              {"polka dot", Int64},
                                                                              {"floral", Int64},
                                                                              {"checker", Int64}}));
  EXPECT_EQ(TaskSpec::load(root() / "task.json").to_json(), TaskSpec::garments().to_json());
  EXPECT_TRUE(fs::exists(root() / "samples.png"));

  const Table data = read_table(root() / "data.parquet");
  const std::vector<std::string> classes = TaskSpec::garments().heads.front().classes;
  const auto& colours = garment_colour_names();
  EXPECT_EQ(colours.size(), 28u);
  for (const auto& category : strings(data, "cc3")) {
    EXPECT_NE(std::find(classes.begin(), classes.end(), category), classes.end()) << category;
  }
  for (const auto& colour : strings(data, "color1")) {
    EXPECT_NE(std::find(colours.begin(), colours.end(), colour), colours.end()) << colour;
  }
  for (const auto& uuid : strings(data, "uuid")) {
    ASSERT_EQ(uuid.size(), 36u);
    EXPECT_EQ(uuid[8], '-');
    EXPECT_EQ(uuid[14], '4');  // version 4, like the real ids
    EXPECT_EQ(uuid.find_first_not_of("0123456789abcdef-"), std::string::npos) << uuid;
  }
  // Several categories and every tag occur, and some images have more than one tag.
  const std::string table = literal(root() / "data.parquet");
  EXPECT_EQ(count_of("SELECT count(DISTINCT cc3) FROM read_parquet(" + table + ")"), 5);
  for (const char* tag : {"polka dot", "floral", "checker"}) {
    EXPECT_GT(count_of(fmt::format("SELECT sum({})::BIGINT FROM read_parquet({})",
                                   sql_identifier(tag), table)),
              10);
  }
  EXPECT_GT(count_of("SELECT count(*) FROM read_parquet(" + table +
                     ") WHERE \"polka dot\" + floral + checker >= 2"),
            0);
  EXPECT_GT(count_of("SELECT count(*) FROM read_parquet(" + table +
                     ") WHERE \"polka dot\" + floral + checker = 0"),
            0);
}

TEST_F(FashionMnistTest, InjectsExactDuplicatesAndKeepsTestIdsApart) {
  const std::string data = literal(root() / "data.parquet");
  const std::string test = literal(root() / "test.parquet");
  EXPECT_EQ(count_of("SELECT count(*) FROM read_parquet(" + data + ")"), 101);
  EXPECT_EQ(count_of("SELECT count(*) FROM (SELECT DISTINCT * FROM read_parquet(" + data + "))"),
            100);
  EXPECT_EQ(count_of("SELECT count(DISTINCT uuid) FROM read_parquet(" + data + ")"), 100);
  EXPECT_EQ(summaries_.front().duplicate_rows, 1u);
  EXPECT_EQ(count_of("SELECT count(*) FROM read_parquet(" + test + ")"), 30);
  EXPECT_EQ(count_of("SELECT count(*) FROM read_parquet(" + test + ") t JOIN read_parquet(" + data +
                     ") d USING (uuid)"),
            0);
  // test_labels and example_predictions cover exactly the test ids, in the same order.
  const Table ids = read_table(root() / "test.parquet");
  EXPECT_EQ(strings(read_table(root() / "test_labels.parquet"), "uuid"), strings(ids, "uuid"));
  const Table predictions = read_table(root() / "example_predictions.parquet");
  EXPECT_EQ(strings(predictions, "uuid"), strings(ids, "uuid"));
  for (size_t r = 0; r < predictions.num_rows(); ++r) {
    EXPECT_NE(predictions.column("category1").values[r], predictions.column("category2").values[r]);
  }

  // The project's loader accepts it and drops the duplicate.
  DatasetReport report;
  const LabelledDataset dataset =
      load_labelled_dataset(root() / "data.parquet", root() / "images",
                            TaskSpec::load(root() / "task.json"), {}, &report);
  EXPECT_EQ(dataset.size(), 100u);
  EXPECT_EQ(report.exact_duplicates_dropped, 1u);
  EXPECT_TRUE(report.missing_images.empty());
}

TEST_F(FashionMnistTest, EveryIdHasAnImageThatDecodes) {
  const struct {
    fs::path dir;
    const char* table;
    const char* extension;
    int side;
  } splits[] = {{root(), "data.parquet", ".jpeg", 64},
                {root(), "test.parquet", ".jpeg", 64},
                {root() / "source", "data.parquet", ".jpeg", 64},
                {root() / "classic", "data.parquet", ".png", 28},
                {root() / "classic", "test.parquet", ".png", 28}};
  size_t checked = 0;
  for (const auto& split : splits) {
    for (const auto& uuid : strings(read_table(split.dir / split.table), "uuid")) {
      const cv::Mat image = load_image(split.dir / "images" / (uuid + split.extension));
      EXPECT_EQ(image.cols, split.side);
      EXPECT_EQ(image.rows, split.side);
      ++checked;
    }
  }
  EXPECT_EQ(checked, 101u + 30 + 40 + 40 + 20);
  EXPECT_EQ(std::distance(fs::directory_iterator(root() / "images"), fs::directory_iterator{}),
            130);
}

TEST_F(FashionMnistTest, SourceAndClassicSplitsHaveTheirOwnClasses) {
  const TaskSpec source = TaskSpec::load(root() / "source" / "task.json");
  ASSERT_EQ(source.heads.size(), 1u);
  EXPECT_EQ(source.heads[0].kind, HeadKind::Softmax);
  EXPECT_EQ(source.heads[0].classes,
            (std::vector<std::string>{"ANKLE_BOOTS", "BAGS", "SANDALS", "SNEAKERS", "TROUSERS"}));
  EXPECT_EQ(schema(root() / "source" / "data.parquet"),
            (std::vector<std::pair<std::string, ColumnType>>{{"uuid", ColumnType::String},
                                                             {"category", ColumnType::String},
                                                             {"color1", ColumnType::String}}));
  const std::vector<std::string> target_classes = TaskSpec::garments().heads.front().classes;
  std::set<std::string> seen;
  for (const auto& category : strings(read_table(root() / "source" / "data.parquet"), "category")) {
    seen.insert(category);
    EXPECT_EQ(std::find(target_classes.begin(), target_classes.end(), category),
              target_classes.end());
  }
  EXPECT_GE(seen.size(), 4u);
  // Source ids are not target ids either.
  EXPECT_EQ(
      count_of("SELECT count(*) FROM read_parquet(" + literal(root() / "source/data.parquet") +
               ") s JOIN read_parquet(" + literal(root() / "data.parquet") + ") d USING (uuid)"),
      0);

  const TaskSpec classic = TaskSpec::load(root() / "classic" / "task.json");
  EXPECT_EQ(classic.image_pattern, "{id}.png");
  ASSERT_EQ(classic.heads.size(), 1u);
  EXPECT_EQ(classic.heads[0].classes.size(), 10u);
  EXPECT_TRUE(std::is_sorted(classic.heads[0].classes.begin(), classic.heads[0].classes.end()));
  const LabelledDataset loaded = load_labelled_dataset(root() / "classic" / "data.parquet",
                                                       root() / "classic" / "images", classic);
  EXPECT_EQ(loaded.size(), 40u);
  std::vector<cv::Mat> channels;
  cv::split(load_image(loaded.images.front()), channels);
  EXPECT_EQ(cv::norm(channels[0], channels[1], cv::NORM_INF), 0);  // grey
  EXPECT_EQ(cv::norm(channels[0], channels[2], cv::NORM_INF), 0);
}

TEST_F(FashionMnistTest, TaggedImagesShowMorePattern) {
  // Mean absolute Laplacian: patterns add edges inside the garment.
  const auto edge_energy = [&](const std::string& uuid) {
    cv::Mat grey;
    cv::cvtColor(load_image(root() / "images" / (uuid + ".jpeg")), grey, cv::COLOR_RGB2GRAY);
    cv::Mat edges;
    cv::Laplacian(grey, edges, CV_32F);
    return cv::mean(cv::abs(edges))[0];
  };
  const Table data = read_table(root() / "data.parquet");
  double tagged = 0;
  double plain = 0;
  int tagged_count = 0;
  int plain_count = 0;
  for (size_t r = 0; r < data.num_rows(); ++r) {
    const bool any_tag = std::get<int64_t>(data.column("polka dot").values[r]) +
                             std::get<int64_t>(data.column("floral").values[r]) +
                             std::get<int64_t>(data.column("checker").values[r]) >
                         0;
    const double energy = edge_energy(std::get<std::string>(data.column("uuid").values[r]));
    (any_tag ? tagged : plain) += energy;
    ++(any_tag ? tagged_count : plain_count);
  }
  ASSERT_GT(tagged_count, 0);
  ASSERT_GT(plain_count, 0);
  EXPECT_GT(tagged / tagged_count, 1.5 * plain / plain_count);
}

TEST(FashionMnistRender, PatternsStayInsideTheGarment) {
  cv::Mat grey(28, 28, CV_8UC1, cv::Scalar(0));
  cv::rectangle(grey, cv::Rect(8, 4, 12, 20), cv::Scalar(200), cv::FILLED);
  GarmentStyle plain;
  plain.colour = cv::Vec3b(40, 150, 60);
  const cv::Mat base = render_garment(grey, 64, plain, 1);
  EXPECT_EQ(base.size(), cv::Size(64, 64));
  EXPECT_EQ(base.at<cv::Vec3b>(2, 2), cv::Vec3b(243, 243, 243));  // background

  cv::Mat garment_mask;
  cv::resize(grey, garment_mask, cv::Size(64, 64), 0, 0, cv::INTER_CUBIC);
  const cv::Mat background = garment_mask < 8;
  const cv::Mat inside = garment_mask > 150;
  for (const auto& [name, style] : {std::pair{"polka dot", GarmentStyle{plain.colour, true}},
                                    {"floral", GarmentStyle{plain.colour, false, true}},
                                    {"checker", GarmentStyle{plain.colour, false, false, true}}}) {
    SCOPED_TRACE(name);
    const cv::Mat patterned = render_garment(grey, 64, style, 1);
    cv::Mat difference;
    cv::absdiff(patterned, base, difference);
    cv::cvtColor(difference, difference, cv::COLOR_RGB2GRAY);
    EXPECT_EQ(cv::countNonZero(difference & background), 0);      // the background is untouched
    EXPECT_GT(cv::countNonZero((difference > 40) & inside), 60);  // the garment is patterned
    // Same seed, same pixels; another seed moves the pattern.
    EXPECT_EQ(cv::norm(patterned, render_garment(grey, 64, style, 1), cv::NORM_INF), 0);
    EXPECT_GT(cv::norm(patterned, render_garment(grey, 64, style, 2), cv::NORM_L1), 0);
  }
}

TEST(FashionMnistBuild, SameSeedSameBytesOtherSeedOtherData) {
  testing::TempDir dir;
  FashionMnistOptions options = small_options(dir / "a");
  options.train_size = 50;
  options.threads = 2;
  make_fashion_mnist_dataset(options);
  options.out_dir = dir / "b";
  options.threads = 1;  // scheduling must not matter
  make_fashion_mnist_dataset(options);
  options.out_dir = dir / "c";
  options.seed = 8;
  make_fashion_mnist_dataset(options);

  const auto a = files_under(dir / "a");
  const auto b = files_under(dir / "b");
  // 12 tables, task.json and samples.png, then the images of each split.
  EXPECT_EQ(a.size(), 12u + 50 + 30 + 40 + 40 + 20);
  EXPECT_TRUE(a == b);
  const auto c = files_under(dir / "c");
  EXPECT_NE(a.at("data.parquet"), c.at("data.parquet"));
  EXPECT_NE(a.at("source/data.parquet"), c.at("source/data.parquet"));
}

TEST(FashionMnistBuild, NeverLeavesAHalfBuiltDataset) {
  testing::TempDir dir;
  FashionMnistOptions options = small_options(dir / "out");
  options.train_size = 30001;  // more than the 30000 target-class images: fails mid-build
  EXPECT_NE(testing::error_of([&] { make_fashion_mnist_dataset(options); })
                .find("--train-size: asked for 30001 images but the Fashion-MNIST file has only "
                      "30000"),
            std::string::npos);
  EXPECT_TRUE(fs::is_empty(dir.path()));  // neither the dataset nor its staging folder

  // An existing folder is kept unless --overwrite, and a foreign folder is never replaced.
  options = small_options(dir / "out");
  options.make_source = options.make_classic = false;
  options.train_size = 20;
  make_fashion_mnist_dataset(options);
  EXPECT_NE(testing::error_of([&] { make_fashion_mnist_dataset(options); }).find("already exists"),
            std::string::npos);
  options.overwrite = true;
  options.train_size = 25;
  make_fashion_mnist_dataset(options);
  EXPECT_EQ(read_table(dir / "out" / "data.parquet").num_rows(), 26u);  // one duplicate
  write_file_atomically(dir / "mine" / "notes.txt", "keep me");
  options.out_dir = dir / "mine";
  EXPECT_NE(testing::error_of([&] {
              make_fashion_mnist_dataset(options);
            }).find("refusing to replace it"),
            std::string::npos);
  EXPECT_EQ(read_file(dir / "mine" / "notes.txt"), "keep me");
}

void write_gzip(const fs::path& path, const std::string& content) {
  gzFile file = gzopen(path.c_str(), "wb");
  ASSERT_NE(file, nullptr);
  gzwrite(file, content.data(), unsigned(content.size()));
  gzclose(file);
}

std::string be32(uint32_t value) {
  return {char(value >> 24), char(value >> 16), char(value >> 8), char(value)};
}

TEST(FashionMnistIdx, ReadsAndValidatesIdxFiles) {
  testing::TempDir dir;
  write_gzip(dir / "images.gz", be32(0x803) + be32(2) + be32(2) + be32(3) + "abcdefghijkl");
  const IdxImages images = read_idx_images(dir / "images.gz");
  EXPECT_EQ(images.count, 2u);
  EXPECT_EQ(images.rows, 2);
  EXPECT_EQ(images.cols, 3);
  EXPECT_EQ(images.image(1)[0], 'g');

  write_gzip(dir / "labels.gz", be32(0x801) + be32(3) + std::string("\x01\x09\x00", 3));
  EXPECT_EQ(read_idx_labels(dir / "labels.gz"), (std::vector<uint8_t>{1, 9, 0}));

  write_gzip(dir / "swapped.gz", be32(0x801) + be32(1) + "x");
  EXPECT_NE(testing::error_of([&] { read_idx_images(dir / "swapped.gz"); })
                .find("swapped.gz: not an IDX image file (magic number 0x00000801, expected "
                      "0x00000803)"),
            std::string::npos);
  write_gzip(dir / "short.gz", be32(0x803) + be32(2) + be32(2) + be32(3) + "abcde");
  EXPECT_NE(testing::error_of([&] {
              read_idx_images(dir / "short.gz");
            }).find("short.gz: file ends after 5 of the 12 bytes of 2 images of 3×2"),
            std::string::npos);
  write_gzip(dir / "bad-label.gz", be32(0x801) + be32(2) + std::string("\x01\x0C", 2));
  EXPECT_NE(testing::error_of([&] {
              read_idx_labels(dir / "bad-label.gz");
            }).find("label 12 of item 1 is not a Fashion-MNIST class"),
            std::string::npos);
  write_gzip(dir / "long.gz", be32(0x801) + be32(1) + "xy");
  EXPECT_NE(
      testing::error_of([&] { read_idx_labels(dir / "long.gz"); }).find("unexpected data after"),
      std::string::npos);
  // A gzip stream cut in the middle.
  const std::string whole = read_file(dir / "images.gz");
  write_file_atomically(dir / "cut.gz", whole.substr(0, whole.size() / 2));
  EXPECT_NE(testing::error_of([&] { read_idx_images(dir / "cut.gz"); }).find("cut.gz"),
            std::string::npos);

  FashionMnistOptions options;
  options.source_dir = dir / "nowhere";
  options.out_dir = dir / "out";
  EXPECT_NE(testing::error_of([&] { make_fashion_mnist_dataset(options); })
                .find("train-images-idx3-ubyte.gz does not exist: install the "
                      "dataset-fashion-mnist package, or pass --fashion-mnist-dir"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(dir / "out"));
}

}  // namespace
}  // namespace garmentnet
