#include "train/transfer_comparison.h"

#include <spdlog/spdlog.h>

#include <chrono>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/html_report.h"
#include "core/plot.h"

namespace garmentnet {
namespace fs = std::filesystem;
using nlohmann::json;

json compare_transfer(TrainOptions target, const fs::path& backbone_file,
                      const std::string& architecture, const fs::path& out_dir,
                      TrainingResources& resources, const TrainingHooks& hooks) {
  struct Mode {
    std::string name;
    TransferMode transfer;
    std::string backbone, description;
  };
  const std::vector<Mode> modes{
      {"frozen", TransferMode::Frozen, backbone_file.string(),
       "heads on the frozen pretrained backbone"},
      {"finetune", TransferMode::Finetune, backbone_file.string(),
       "pretrained backbone, last blocks fine-tuned"},
      {"scratch", TransferMode::Scratch, architecture, "same architecture from random weights"}};
  struct Outcome {
    double seconds = 0;
    TrainResult result;
  };
  std::vector<Outcome> outcomes;
  target.report = false;
  target.resume = false;
  for (const auto& mode : modes) {
    TrainOptions options = target;
    options.transfer = mode.transfer;
    options.backbone = mode.backbone;
    options.out_dir = out_dir / "compare" / mode.name;
    fs::remove_all(options.out_dir);
    spdlog::info("transfer comparison: {} ({})", mode.name, mode.description);
    const auto start = std::chrono::steady_clock::now();
    TrainResult result = train_model(options, resources, hooks);
    if (result.interrupted)
      fail("transfer comparison stopped by signal during the {} run", mode.name);
    outcomes.push_back(
        {std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(),
         std::move(result)});
  }

  // One row per mode: top-1/top-2 of softmax heads, macro F1 and mAP of tag heads.
  std::vector<std::string> columns;
  std::vector<std::vector<std::string>> rows;
  BarChart chart{.style = {.title = "Validation results by transfer mode", .y_label = "score"},
                 .value_decimals = 2};
  for (const auto& mode : modes) chart.series_names.push_back(mode.name);
  chart.values.resize(modes.size());
  for (const auto& [head, first] : outcomes.front().result.best_metrics.heads) {
    const std::vector<std::string> labels = first.softmax
                                                ? std::vector<std::string>{"top-1", "top-2"}
                                                : std::vector<std::string>{"macro F1", "mAP"};
    for (size_t k = 0; k < labels.size(); ++k) {
      columns.push_back(head + " " + labels[k]);
      chart.categories.push_back(head + " " + labels[k]);
      for (size_t m = 0; m < outcomes.size(); ++m) {
        const HeadMetrics& h = outcomes[m].result.best_metrics.head(head);
        chart.values[m].push_back(
            h.softmax ? (k == 0 ? h.softmax->top1_accuracy : h.softmax->top2_accuracy)
                      : (k == 0 ? h.multilabel->macro_f1 : h.multilabel->mean_average_precision));
      }
    }
  }
  json results = json::array();
  for (size_t m = 0; m < outcomes.size(); ++m) {
    std::vector<std::string> row{modes[m].name, modes[m].description};
    for (double value : chart.values[m]) row.push_back(fmt::format("{:.3f}", value));
    row.push_back(fmt::format("{:.0f}", outcomes[m].seconds));
    rows.push_back(std::move(row));
    results.push_back({{"mode", modes[m].name},
                       {"description", modes[m].description},
                       {"seconds", outcomes[m].seconds},
                       {"best_epoch", outcomes[m].result.best_epoch},
                       {"validation", outcomes[m].result.best_metrics.to_json()}});
  }
  std::vector<std::string> headers{"mode", "what"};
  headers.insert(headers.end(), columns.begin(), columns.end());
  headers.push_back("seconds");

  fs::create_directories(out_dir / "plots");
  write_bar_chart(chart, out_dir / "plots" / "transfer.png");
  HtmlReport report("Transfer learning: " + backbone_file.string());
  report.section("Target task, three ways")
      .paragraph(fmt::format(
          "Each mode trained on {} for up to {} epochs with the same settings; scores are on the "
          "same validation split (thresholds tuned on it).",
          target.data_dir.string(), target.epochs))
      .table(headers, rows)
      .image("plots/transfer.png");
  report.write(out_dir / "transfer.html");
  const json summary = {{"target", target.data_dir.string()},
                        {"backbone", backbone_file.string()},
                        {"runs", results}};
  write_file_atomically(out_dir / "transfer.json", summary.dump(2));
  spdlog::info("transfer comparison: {}", (out_dir / "transfer.html").string());
  return summary;
}

}  // namespace garmentnet
