// `garmentnet make-dataset fashion-mnist`: builds the built-in dataset (docs/datasets.md).
#include <fmt/core.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "data/fashion_mnist.h"

namespace garmentnet::cli {

void add_make_dataset_command(CLI::App& app) {
  CLI::App* command = app.add_subcommand(
      "make-dataset", "Build a built-in dataset laid out like the real garment data (no download)");
  command->require_subcommand(1);
  CLI::App* fashion = command->add_subcommand(
      "fashion-mnist",
      "Fashion-MNIST as garments: target split (cc3 + synthetic pattern tags), source split for "
      "pretraining, optional classic 10-class split");

  struct Arguments {
    FashionMnistOptions options;
    std::vector<std::string> variants{"target", "source"};
  };
  auto arguments = std::make_shared<Arguments>();
  FashionMnistOptions& options = arguments->options;
  fashion->add_option("--out", options.out_dir, "Folder to create")->required();
  fashion->add_flag("--overwrite", options.overwrite,
                    "Replace an existing dataset folder (once the new one is complete)");
  fashion->add_option("--variants", arguments->variants, "Comma-separated: target, source, classic")
      ->delimiter(',')
      ->check(CLI::IsMember({"target", "source", "classic"}))
      ->capture_default_str();
  fashion->add_option("--image-size", options.image_size, "Side of target/source images in pixels")
      ->capture_default_str();
  fashion->add_option("--train-size", options.train_size, "Target rows in data.parquet")
      ->capture_default_str();
  fashion->add_option("--test-size", options.test_size, "Target rows in test.parquet")
      ->capture_default_str();
  fashion->add_option("--source-size", options.source_size, "Rows of the source split")
      ->capture_default_str();
  fashion
      ->add_option("--classic-train-size", options.classic_train_size,
                   "Rows of the classic training table (0 = all 60000)")
      ->capture_default_str();
  fashion
      ->add_option("--classic-test-size", options.classic_test_size,
                   "Rows of the classic test table (0 = all 10000)")
      ->capture_default_str();
  fashion
      ->add_option("--classic-image-size", options.classic_image_size,
                   "Side of classic images in pixels")
      ->capture_default_str();
  fashion
      ->add_option("--tag-probability", options.tag_probability,
                   "Chance of each pattern tag per image")
      ->capture_default_str();
  fashion
      ->add_option("--label-noise", options.label_noise,
                   "Share of data.parquet's categories replaced by a wrong one, recorded in "
                   "label_noise.parquet (to measure how well `tune` finds wrong labels)")
      ->capture_default_str();
  fashion->add_option("--seed", options.seed, "Same seed, same dataset")->capture_default_str();
  fashion->add_option("--threads", options.threads, "Image workers (0 = all cores)")
      ->capture_default_str();
  fashion
      ->add_option("--fashion-mnist-dir", options.source_dir,
                   "Folder with the Fashion-MNIST IDX .gz files")
      ->capture_default_str();

  fashion->callback([arguments] {
    FashionMnistOptions options = arguments->options;
    const auto wants = [&](const char* name) {
      return std::find(arguments->variants.begin(), arguments->variants.end(), name) !=
             arguments->variants.end();
    };
    options.make_target = wants("target");
    options.make_source = wants("source");
    options.make_classic = wants("classic");
    for (const SplitSummary& split : make_fashion_mnist_dataset(options)) {
      fmt::print("{:8} {} rows in data.parquet", split.name, split.train_rows);
      if (split.duplicate_rows > 0) fmt::print(" ({} exact duplicate rows)", split.duplicate_rows);
      if (split.test_rows > 0) fmt::print(", {} in test.parquet", split.test_rows);
      fmt::print(", {} images -> {}\n", split.images, split.directory.string());
    }
  });
}

}  // namespace garmentnet::cli
