// `garmentnet export`: flags → ExportOptions.
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "infer/export.h"

namespace garmentnet::cli {

void add_export_command(CLI::App& app) {
  auto options = std::make_shared<ExportOptions>();
  CLI::App* command = app.add_subcommand(
      "export",
      "Write a model file as a standalone TorchScript module for TorchServe, Triton or Python "
      "(inputs, outputs and attributes: docs/export.md)");
  command->add_option("--model", options->model, "model file (.gnm) written by `train`")
      ->required();
  command->add_option("--format", options->format, "torchscript")
      ->check(CLI::IsMember({"torchscript"}))
      ->capture_default_str();
  command->add_option("--out", options->out, "file to write, e.g. model.pt")->required();
  command->callback([options] {
    export_model(*options);
    std::printf("Wrote %s (%s)\n", options->out.c_str(), options->format.c_str());
  });
}

}  // namespace garmentnet::cli
