// garmentnet explore: the data analysis report of a dataset folder.
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "data/explore.h"
#include "data/explore_report.h"

namespace garmentnet::cli {

void add_explore_command(CLI::App& app) {
  struct Flags {
    std::filesystem::path data;
    std::filesystem::path out;
    std::filesystem::path task;
    std::filesystem::path images;
    uint32_t seed = 42;
    size_t samples = 8;
    int threads = 0;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* command = app.add_subcommand(
      "explore",
      "Data analysis report of a dataset folder: duplicates, missing images, categories, tags, "
      "co-occurrence, colours, image sizes, sample images (terminal summary, OUT/report.html, "
      "OUT/explore.json)");
  command->add_option("--data", flags->data, "dataset folder holding data.parquet and images/")
      ->required();
  command->add_option("--out", flags->out, "report folder (default: DATA/explore)");
  command->add_option("--task", flags->task,
                      "task spec JSON (default: DATA/task.json if present, else the garment task)");
  command->add_option("--images", flags->images, "images folder (default: DATA/images)");
  command->add_option("--seed", flags->seed, "chooses the sample images")->capture_default_str();
  command->add_option("--samples", flags->samples, "sample images per category and per tag")
      ->capture_default_str();
  command->add_option("--threads", flags->threads, "threads for reading images (0: all cores)")
      ->capture_default_str();

  command->callback([flags] {
    ExploreOptions options;
    options.data_dir = flags->data;
    options.images_dir = flags->images;
    const std::filesystem::path default_task = flags->data / "task.json";
    if (!flags->task.empty()) {
      options.spec = TaskSpec::load(flags->task);
    } else if (std::filesystem::is_regular_file(default_task)) {
      options.spec = TaskSpec::load(default_task);
    }
    options.seed = flags->seed;
    options.samples_per_grid = flags->samples;
    options.threads = flags->threads;
    const ExploreResult result = explore_dataset(options);
    std::fputs(explore_summary_text(result).c_str(), stdout);
    const std::filesystem::path out = flags->out.empty() ? flags->data / "explore" : flags->out;
    write_explore_report(result, out);
    std::printf("\nReport: %s\nNumbers: %s\n", (out / "report.html").c_str(),
                (out / "explore.json").c_str());
  });
}

}  // namespace garmentnet::cli
