#include "train/transfer_comparison.h"

#include <spdlog/spdlog.h>

#include <chrono>

#include "core/atomic_file.h"
#include "core/html_report.h"
#include "core/plot.h"

namespace garmentnet {
namespace fs = std::filesystem;
using nlohmann::json;

json compare_transfer(TrainOptions target, const fs::path& backbone_file,
                      const std::string& architecture, const fs::path& out_dir) {
  struct Mode {
    std::string name, transfer, backbone, description;
  };
  const std::vector<Mode> modes{
      {"frozen", "frozen", backbone_file.string(), "heads on the frozen pretrained backbone"},
      {"finetune", "finetune", backbone_file.string(),
       "pretrained backbone, last blocks fine-tuned"},
      {"scratch", "scratch", architecture, "same architecture from random weights"}};
  json results = json::array();
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
    const TrainResult result = train_model(options);
    results.push_back(
        {{"mode", mode.name},
         {"description", mode.description},
         {"seconds",
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()},
         {"best_epoch", result.best_epoch},
         {"validation", result.best_metrics}});
  }

  // One row per mode: top-1/top-2 of softmax heads, macro F1 and mAP of tag heads.
  std::vector<std::string> columns;
  std::vector<std::vector<std::string>> rows;
  BarChart chart{.style = {.title = "Validation results by transfer mode", .y_label = "score"},
                 .value_decimals = 2};
  for (const auto& r : results) chart.series_names.push_back(r["mode"].get<std::string>());
  chart.values.resize(results.size());
  const json& first_heads = results.front()["validation"]["heads"];
  for (const auto& [head, metrics] : first_heads.items()) {
    const bool softmax = metrics.contains("top1_accuracy");
    const std::vector<std::pair<std::string, std::string>> keys =
        softmax ? std::vector<std::pair<std::string, std::string>>{{"top1_accuracy", "top-1"},
                                                                   {"top2_accuracy", "top-2"}}
                : std::vector<std::pair<std::string, std::string>>{
                      {"macro_f1", "macro F1"}, {"mean_average_precision", "mAP"}};
    for (const auto& [key, label] : keys) {
      columns.push_back(head + " " + label);
      chart.categories.push_back(head + " " + label);
      for (size_t m = 0; m < results.size(); ++m) {
        chart.values[m].push_back(results[m]["validation"]["heads"][head][key].get<double>());
      }
    }
  }
  for (size_t m = 0; m < results.size(); ++m) {
    std::vector<std::string> row{results[m]["mode"].get<std::string>(),
                                 results[m]["description"].get<std::string>()};
    for (double value : chart.values[m]) row.push_back(fmt::format("{:.3f}", value));
    row.push_back(fmt::format("{:.0f}", results[m]["seconds"].get<double>()));
    rows.push_back(std::move(row));
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
