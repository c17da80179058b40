// Each subcommand lives in its own file and registers itself on the app: parsing only, the work
// is done by the core library.
#pragma once

#include <CLI/CLI.hpp>

namespace garmentnet::cli {

// bench_command.cpp: inference speed, memory, size and FLOPs of a model file.
void add_bench_command(CLI::App& app);
// export_command.cpp: writes a model file in a format other servers load (TorchScript).
void add_export_command(CLI::App& app);

// explore_command.cpp: the data analysis report of a dataset folder.
void add_explore_command(CLI::App& app);

// make_dataset_command.cpp: builds the built-in Fashion-MNIST garment dataset.
void add_make_dataset_command(CLI::App& app);
// train_command.cpp: trains the multi-task model / pretrains a backbone.
void add_train_command(CLI::App& app);
void add_pretrain_command(CLI::App& app);

}  // namespace garmentnet::cli
