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
// quantize_command.cpp: writes an int8 copy of a model, checked against the fp32 one.
void add_quantize_command(CLI::App& app);
// predict_command.cpp: batch prediction over a table of ids.
void add_predict_command(CLI::App& app);
void add_merge_predictions_command(CLI::App& app);
// evaluate_command.cpp: scores a model (or a predictions file) against labels.
void add_evaluate_command(CLI::App& app);
// train_command.cpp: trains the multi-task model / pretrains a backbone.
void add_train_command(CLI::App& app);
void add_pretrain_command(CLI::App& app);
// runs_command.cpp: training runs after the fact (sending kept MLflow records).
void add_runs_command(CLI::App& app);
// tune_command.cpp
void add_tune_command(CLI::App& app);
// serve_command.cpp: the HTTP model service.
void add_serve_command(CLI::App& app);

// torch_main.cpp: LibTorch's intra-op threads, a process-wide setting (0 = all cores). Commands
// that run a model set it once, here at the edge; the library never does.
void use_model_threads(int threads);

}  // namespace garmentnet::cli
