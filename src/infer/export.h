// `garmentnet export`: a model file in a format other model servers and Python load directly.
// docs/export.md describes the TorchScript file's inputs, outputs and attributes.
#pragma once

#include <filesystem>
#include <string>

namespace garmentnet {

struct ExportOptions {
  std::filesystem::path model;         // model file (.gnm) to export
  std::string format = "torchscript";  // only "torchscript" for now
  std::filesystem::path out;           // file to write (e.g. model.pt), atomically
};

// Exports `options.model`. InputError for an unusable model file or an unknown format.
void export_model(const ExportOptions& options);

}  // namespace garmentnet
