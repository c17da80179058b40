#include "infer/export.h"

#include "core/error.h"
#include "infer/torchscript_export.h"
#include "model/model_file.h"
#include "model/quantized_backbone.h"

namespace garmentnet {

void export_model(const ExportOptions& options) {
  if (options.format != "torchscript")
    fail("unknown export format '{}'; the only format is torchscript", options.format);
  if (options.out.empty()) fail("say where to write the exported model (--out FILE)");
  ModelBundle bundle = load_model_file(options.model);
  if (is_quantized(bundle.model->backbone()))
    fail(
        "{} is an int8 model, which `export --format torchscript` cannot write yet "
        "(docs/quantization.md); export the fp32 model it was quantized from",
        options.model.string());
  export_torchscript(bundle, read_model_file_document(options.model), options.out);
}

}  // namespace garmentnet
