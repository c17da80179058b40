#include "infer/export.h"

#include "core/error.h"
#include "infer/torchscript_export.h"
#include "model/model_file.h"

namespace garmentnet {

void export_model(const ExportOptions& options) {
  if (options.format != "torchscript")
    fail("unknown export format '{}'; the only format is torchscript", options.format);
  if (options.out.empty()) fail("say where to write the exported model (--out FILE)");
  ModelBundle bundle = load_model_file(options.model);
  export_torchscript(bundle, read_model_file_document(options.model), options.out);
}

}  // namespace garmentnet
