// garmentnet: one executable, one subcommand per job.
#include <torch/version.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>

#include "cli/commands.h"
#include "core/error.h"
#include "core/log.h"
#include "core/version.h"

int main(int argc, char** argv) {
  // LibTorch's OpenMP threads spin while they wait for work; when JPEG decoding or other processes
  // want the same cores, the spinning starves them (up to 10x slower predict on 2 busy cores,
  // docs/benchmarks.md). OpenMP reads the policy once at start-up, so set it and start again;
  // a policy the user chose is kept.
  if (std::getenv("OMP_WAIT_POLICY") == nullptr) {
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    execv("/proc/self/exe", argv);  // returns only on failure: then run with the default policy
  }
  CLI::App app{
      "garmentnet: learns clothing categories and pattern tags from photos, predicts in batch and "
      "serves the model over HTTP"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "garmentnet " + std::string(garmentnet::kGarmentnetVersion) +
                                        " (LibTorch " + TORCH_VERSION + ")");
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "debug, info, warn or error")->capture_default_str();
  app.parse_complete_callback([&] { garmentnet::init_logging(log_level); });

  // Subcommands register here (see cli/commands.h).
  garmentnet::cli::add_bench_command(app);
  garmentnet::cli::add_export_command(app);
  garmentnet::cli::add_explore_command(app);
  garmentnet::cli::add_make_dataset_command(app);
  garmentnet::cli::add_pretrain_command(app);
  garmentnet::cli::add_train_command(app);
  garmentnet::cli::add_predict_command(app);
  garmentnet::cli::add_merge_predictions_command(app);
  garmentnet::cli::add_quantize_command(app);
  garmentnet::cli::add_evaluate_command(app);
  garmentnet::cli::add_runs_command(app);
  garmentnet::cli::add_tune_command(app);
  garmentnet::cli::add_serve_command(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return app.exit(error);
  } catch (const garmentnet::InputError& error) {
    std::fprintf(stderr, "error: %s\n", error.what());
    return 1;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "internal error: %s\n(please report this with the command you ran)\n",
                 error.what());
    return 2;
  }
  return 0;
}
