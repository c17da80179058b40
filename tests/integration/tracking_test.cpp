// Experiment tracking: every run folder's TensorBoard event files, read back by an independent
// reader (tests/python/read_tensorboard_events.py: Debian's protobuf and crcmod).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "test_support.h"
#include "train/run_comparison.h"
#include "train/run_listing.h"
#include "train/tensorboard_events.h"

namespace garmentnet::testing {
namespace {

// What the independent reader finds in `folder`.
nlohmann::json read_events(const std::filesystem::path& folder) {
  const CommandResult result =
      run_shell(std::string("/usr/bin/python3 ") + GARMENTNET_SOURCE_DIR +
                "/tests/python/read_tensorboard_events.py '" + folder.string() + "'");
  EXPECT_EQ(result.exit_code, 0) << result.output;
  return nlohmann::json::parse(result.output.substr(result.output.find('{')));
}

TEST(TensorBoard, Crc32cMatchesTheCastagnoliCheckValue) {
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(crc32c(""), 0u);
}

TEST(TensorBoard, EveryRunFolderHasTheEpochFiguresAndTheBestEpochsPictures) {
  TempDir dir;
  TrainOptions options = quick_train_options(dir / "run", 2);
  options.report = true;
  const TrainResult result = train_model(options, training_resources());
  const nlohmann::json events = read_events(dir / "run/tensorboard");
  EXPECT_EQ(events["files"], 1);
  EXPECT_EQ(events["file_version"], "brain.Event:2");
  EXPECT_EQ(events["torn_tail"], 0);

  // The scalars are metrics.json's figures, epoch by epoch (as float32).
  const nlohmann::json metrics = nlohmann::json::parse(read_file(dir / "run/metrics.json"));
  ASSERT_EQ(metrics.size(), 2u);
  const nlohmann::json& scalars = events["scalars"];
  for (const char* tag :
       {"train/loss", "validation/loss", "validation/cc3/top1", "validation/cc3/top2",
        "validation/tags/mAP", "validation/tags/f1/polka dot", "speed/images_per_second",
        "schedule/lr_factor"}) {
    ASSERT_TRUE(scalars.contains(tag)) << tag << " missing from " << scalars.dump().substr(0, 500);
    ASSERT_EQ(scalars[tag].size(), 2u) << tag;
    for (size_t epoch = 0; epoch < 2; ++epoch) EXPECT_EQ(scalars[tag][epoch][0], epoch + 1) << tag;
  }
  for (size_t epoch = 0; epoch < 2; ++epoch) {
    const nlohmann::json& validation = metrics[epoch]["val"];
    EXPECT_NEAR(scalars["validation/loss"][epoch][1].get<double>(),
                validation["loss"].get<double>(), 1e-5);
    EXPECT_NEAR(scalars["validation/cc3/top1"][epoch][1].get<double>(),
                result.history[epoch].validation.head("cc3").softmax->top1_accuracy, 1e-6);
  }

  // The best epoch's confusion matrix and validation samples, as PNG images.
  for (const char* tag : {"best_epoch/cc3_confusion", "best_epoch/validation_samples"}) {
    ASSERT_TRUE(events["images"].contains(tag)) << events["images"].dump();
    const nlohmann::json& image = events["images"][tag][0];
    EXPECT_EQ(image["step"], result.best_epoch);
    EXPECT_TRUE(image["is_png"].get<bool>());
    EXPECT_GT(image["width"].get<int>(), 50);
    EXPECT_GT(image["height"].get<int>(), 50);
  }
}

TEST(TensorBoard, AFileCutMidRecordStillReadsUpToItsLastWholeRecord) {
  TempDir dir;
  std::filesystem::path file;
  {
    TensorBoardWriter writer(dir / "tb");
    for (int step = 1; step <= 5; ++step) writer.add_scalar("loss", 1.0 / step, step);
    file = writer.path();
  }
  // A crash in the middle of the last record's write.
  std::filesystem::resize_file(file, std::filesystem::file_size(file) - 7);
  const nlohmann::json events = read_events(dir / "tb");
  EXPECT_EQ(events["scalars"]["loss"].size(), 4u);
  EXPECT_GT(events["torn_tail"].get<int>(), 0);
  EXPECT_NEAR(events["scalars"]["loss"][3][1].get<double>(), 0.25, 1e-7);
}

}  // namespace
}  // namespace garmentnet::testing

namespace garmentnet::testing {
namespace {

TEST(Runs, ListShowsEveryRunWithItsStatusAndBestEpoch) {
  TempDir dir;
  const TrainResult finished =
      train_model(quick_train_options(dir / "runs/finished", 2), training_resources());
  // A run that fails after it started: its data folder is missing.
  TrainOptions broken = quick_train_options(dir / "runs/group/failed", 2);
  broken.data_dir = dir / "no-such-data";
  EXPECT_THROW(train_model(broken, training_resources()), InputError);
  // A run whose process was killed, and one still running (this process).
  std::filesystem::copy(dir / "runs/finished", dir / "runs/killed",
                        std::filesystem::copy_options::recursive);
  write_file_atomically(dir / "runs/killed/status.json",
                        R"({"status": "running", "pid": 999999999})");
  std::filesystem::copy(dir / "runs/finished", dir / "runs/running",
                        std::filesystem::copy_options::recursive);
  write_run_status(dir / "runs/running", RunStatus::Running);
  // A run of a garmentnet version that wrote no status.json.
  std::filesystem::copy(dir / "runs/finished", dir / "runs/old",
                        std::filesystem::copy_options::recursive);
  std::filesystem::remove(dir / "runs/old/status.json");

  std::map<std::string, RunSummary> runs;
  for (RunSummary& run : list_runs(dir / "runs")) runs.emplace(run.name, std::move(run));
  ASSERT_EQ(runs.size(), 5u);
  const RunSummary& done = runs.at("finished");
  EXPECT_EQ(done.status, RunStatus::Finished);
  EXPECT_EQ(done.backbone, "small_cnn");
  EXPECT_EQ(done.transfer, "scratch");
  EXPECT_EQ(done.epochs_run, 2);
  EXPECT_EQ(done.best_epoch, finished.best_epoch);
  EXPECT_DOUBLE_EQ(*done.top1, finished.best_metrics.head("cc3").softmax->top1_accuracy);
  EXPECT_DOUBLE_EQ(*done.tag_f1, finished.best_metrics.head("tags").multilabel->macro_f1);
  EXPECT_EQ(runs.at("group/failed").status, RunStatus::Failed);
  EXPECT_NE(runs.at("group/failed").detail.find("no-such-data"), std::string::npos);
  EXPECT_EQ(runs.at("killed").status, RunStatus::Stopped);
  EXPECT_EQ(runs.at("running").status, RunStatus::Running);
  EXPECT_FALSE(runs.at("old").status);
  EXPECT_EQ(runs.at("old").best_epoch, finished.best_epoch);

  const CommandResult listed =
      run_garmentnet(fmt::format("runs list '{}' --status failed", (dir / "runs").string()));
  ASSERT_EQ(listed.exit_code, 0) << listed.output;
  EXPECT_NE(listed.output.find("group/failed"), std::string::npos) << listed.output;
  EXPECT_EQ(listed.output.find("killed"), std::string::npos) << listed.output;
  EXPECT_NE(listed.output.find("1 run(s)"), std::string::npos) << listed.output;
}

// `runs` answers without loading LibTorch (which takes most of a second); every other command line
// reaches garmentnet-torch unchanged, global options included.
TEST(Runs, ListAnswersWithoutLoadingLibTorch) {
  const TempDir dir;
  const auto loaded = [](const std::string& arguments) {
    return run_shell(fmt::format("LD_DEBUG=libs '{}' {}", GARMENTNET_BINARY, arguments));
  };
  const CommandResult listed =
      loaded(fmt::format("--log-level warn runs list '{}'", dir.path().string()));
  ASSERT_EQ(listed.exit_code, 0) << listed.output;
  EXPECT_NE(listed.output.find("0 run(s)"), std::string::npos) << listed.output;
  EXPECT_EQ(listed.output.find("libtorch"), std::string::npos) << listed.output;

  const CommandResult other = loaded("--log-level warn export --help");
  ASSERT_EQ(other.exit_code, 0) << other.output;
  EXPECT_NE(other.output.find("libtorch_cpu"), std::string::npos);
  EXPECT_NE(other.output.find("TorchScript"), std::string::npos) << other.output;
  EXPECT_NE(run_garmentnet("--log-level warn no-such-command").exit_code, 0);
}

// The cells of the first table row of `html` whose first cell is `name`; none when there is none.
std::vector<std::string> table_row(const std::string& html, const std::string& name) {
  const size_t at = html.find(">" + name + "</td>");
  if (at == std::string::npos) return {};
  const size_t end = html.find("</tr>", at);
  std::vector<std::string> cells;
  for (size_t cell = html.rfind("<tr>", at); (cell = html.find("<td", cell)) < end;) {
    const size_t text = html.find('>', cell) + 1;
    cell = html.find("</td>", text);
    cells.push_back(html.substr(text, cell - text));
  }
  return cells;
}

TEST(Runs, CompareShowsTheOptionsThatDifferTheBestEpochsAndTheCurves) {
  TempDir dir;
  TrainOptions first = quick_train_options(dir / "runs/a", 2);
  TrainOptions second = quick_train_options(dir / "runs/b", 3);
  second.head_lr = 0.01;
  const TrainResult a = train_model(first, training_resources());
  const TrainResult b = train_model(second, training_resources());
  const std::string run_a = (dir / "runs/a").string();
  const std::string run_b = (dir / "runs/b").string();

  const CommandResult compared = run_garmentnet(
      fmt::format("runs compare '{}' '{}' --out '{}'", run_a, run_b, (dir / "cmp").string()));
  ASSERT_EQ(compared.exit_code, 0) << compared.output;
  const std::string html = read_file(dir / "cmp/compare.html");
  // The options that differ, with each run's value, and none of those that are the same.
  EXPECT_EQ(table_row(html, "epochs"), (std::vector<std::string>{"epochs", "2", "3"})) << html;
  EXPECT_EQ(table_row(html, "head_lr").size(), 3u);
  EXPECT_TRUE(table_row(html, "image_size").empty());
  EXPECT_TRUE(table_row(html, "out").empty());
  // Each run's best-epoch figures side by side, as metrics.json has them.
  const double top1_a = a.best_metrics.head("cc3").softmax->top1_accuracy;
  const double top1_b = b.best_metrics.head("cc3").softmax->top1_accuracy;
  EXPECT_EQ(
      table_row(html, "validation/cc3/top1"),
      (std::vector<std::string>{"validation/cc3/top1", fmt::format("{:.4f}", top1_a),
                                fmt::format("{:.4f}", top1_b), top1_b > top1_a ? run_b : run_a}));
  EXPECT_EQ(table_row(html, "best epoch"),
            (std::vector<std::string>{"best epoch", std::to_string(a.best_epoch),
                                      std::to_string(b.best_epoch), ""}));
  // The curves, as PNG images the page shows.
  for (const char* chart :
       {"validation_score", "validation_loss", "validation_cc3_top2", "validation_tags_mAP"}) {
    const std::string file = fmt::format("plots/{}.png", chart);
    EXPECT_NE(html.find(file), std::string::npos) << file;
    EXPECT_EQ(read_file(dir / "cmp" / file).substr(1, 3), "PNG") << file;
  }

  // A folder that is not a run is named, with what to give instead.
  const CommandResult refused = run_garmentnet(fmt::format(
      "runs compare '{}' '{}' --out '{}'", run_a, dir.path().string(), (dir / "x").string()));
  EXPECT_EQ(refused.exit_code, 1) << refused.output;
  EXPECT_NE(refused.output.find(dir.path().string() + " is not a training run folder"),
            std::string::npos)
      << refused.output;
}

TEST(Runs, DifferingOptionsComparesNestedOptionsAndMissingOnes) {
  const std::vector<nlohmann::json> configs = {
      {{"seed", 1}, {"augmentation", {{"brightness", 0.1}, {"flip", true}}}, {"out", "a"}},
      {{"seed", 1}, {"augmentation", {{"brightness", 0.2}, {"flip", true}}}, {"out", "b"}},
      {{"seed", 1}, {"augmentation", {{"brightness", 0.1}, {"flip", true}}}, {"dropout", 0.5}}};
  const std::vector<std::vector<std::string>> expected = {
      {"augmentation.brightness", "0.1", "0.2", "0.1"}, {"dropout", "", "", "0.5"}};
  EXPECT_EQ(differing_options(configs), expected);
}

}  // namespace
}  // namespace garmentnet::testing
