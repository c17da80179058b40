// The backbone interface, TorchScript backbones and backbone files. The only translation unit of
// the model layer that includes TorchScript (torch/script.h).
#include "model/backbone.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/script.h>
#include <torch/serialize.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "model/file_container.h"
#include "model/quantized_backbone.h"

namespace garmentnet {

// ---- BackboneImpl

void BackboneImpl::freeze() { unfreeze_last_blocks(0); }

void BackboneImpl::unfreeze_last_blocks(size_t count) {
  frozen_blocks_.clear();
  const size_t frozen = block_names_.size() > count ? block_names_.size() - count : 0;
  for (size_t i = 0; i < frozen; ++i) frozen_blocks_.insert(block_names_[i]);
  for (const auto& block : block_names_)
    for (auto& parameter : block_parameters(block))
      parameter.set_requires_grad(!frozen_blocks_.contains(block));
  train(is_training());
}

std::vector<torch::Tensor> BackboneImpl::trainable_parameters() {
  std::vector<torch::Tensor> result;
  for (auto& parameter : parameters())
    if (parameter.requires_grad()) result.push_back(parameter);
  return result;
}

void BackboneImpl::train(bool on) {
  torch::nn::Module::train(on);
  for (const auto& block : frozen_blocks_) set_block_training(block, false);
}

// ---- TorchScript backbones

namespace {

constexpr const char* kMetadataFile = "garmentnet.json";

class TorchScriptBackboneImpl : public BackboneImpl {
 public:
  TorchScriptBackboneImpl(torch::jit::Module module, nlohmann::json metadata, std::string source)
      : module_(std::move(module)), metadata_(std::move(metadata)), source_(std::move(source)) {
    // Registered with the torch::nn side too, so optimisers, .to(device) and parameter groups see
    // them; they are the same tensors as the TorchScript module's.
    for (const auto& parameter : module_.named_parameters(/*recurse=*/true))
      register_parameter(flat_name(parameter.name), parameter.value);
    for (const auto& buffer : module_.named_buffers(/*recurse=*/true))
      register_buffer(flat_name(buffer.name), buffer.value);
    find_blocks();
    feature_dim_ = metadata_.value("feature_dim", int64_t{0});
    if (feature_dim_ <= 0) {
      torch::NoGradGuard no_grad;
      const bool was_training = is_training();
      module_.eval();
      feature_dim_ = forward(torch::zeros({1, 3, 64, 64})).size(1);
      module_.train(was_training);
    }
  }

  torch::Tensor forward(torch::Tensor images) override {
    torch::Tensor features = module_.forward({images}).toTensor();
    if (features.dim() == 4) features = features.mean({2, 3});
    if (features.dim() != 2)
      fail(
          "TorchScript backbone {} returned features of shape [{}]; it must return [N, C] or "
          "[N, C, H, W]",
          source_, fmt::join(features.sizes(), ", "));
    return features;
  }

  int64_t feature_dim() const override { return feature_dim_; }

  nlohmann::json architecture() const override {
    return {{"kind", "torchscript"}, {"source", source_}, {"metadata", metadata_}};
  }

  std::optional<Preprocessing> expected_preprocessing() const override {
    if (!metadata_.contains("input_size") || !metadata_.contains("mean") ||
        !metadata_.contains("std"))
      return std::nullopt;
    Preprocessing pre;
    pre.width = pre.height = metadata_["input_size"].get<int>();
    pre.mean = metadata_["mean"].get<std::array<float, 3>>();
    pre.std = metadata_["std"].get<std::array<float, 3>>();
    return pre;
  }

  std::vector<torch::Tensor> block_parameters(const std::string& block) override {
    std::vector<torch::Tensor> result;
    for (const auto& parameter : find_block(block).parameters(/*recurse=*/true))
      result.push_back(parameter);
    return result;
  }

  void train(bool on) override {
    module_.train(on);
    BackboneImpl::train(on);
  }

  // Its weights travel as TorchScript bytes (torchscript_bytes), not in torch::nn archives.
  bool is_serializable() const override { return false; }

  std::string bytes() const {
    std::ostringstream out;
    module_.save(out, {{kMetadataFile, metadata_.dump()}});
    return out.str();
  }

 protected:
  void set_block_training(const std::string& block, bool on) override {
    find_block(block).train(on);
  }

 private:
  // torch::nn names may not contain dots.
  static std::string flat_name(std::string name) {
    std::replace(name.begin(), name.end(), '.', '/');
    return name;
  }

  static bool has_parameters(const torch::jit::Module& module) {
    return module.parameters(/*recurse=*/true).size() > 0;
  }

  void find_blocks() {
    std::vector<std::pair<std::string, torch::jit::Module>> candidates;
    std::string prefix;
    torch::jit::Module parent = module_;
    while (true) {
      candidates.clear();
      for (const auto& child : parent.named_children())
        if (has_parameters(child.value)) candidates.emplace_back(prefix + child.name, child.value);
      // A single container holding everything (e.g. VGG's `features`) is split into its children.
      if (candidates.size() != 1 || candidates[0].second.named_children().size() == 0) break;
      prefix = candidates[0].first + ".";
      parent = candidates[0].second;
    }
    std::vector<std::string> names;
    for (auto& [name, module] : candidates) {
      names.push_back(name);
      blocks_.emplace(name, module);
    }
    set_block_names(std::move(names));
  }

  torch::jit::Module find_block(const std::string& block) {
    const auto found = blocks_.find(block);
    if (found == blocks_.end())
      fail("TorchScript backbone {} has no block '{}'; its blocks are {}", source_, block,
           fmt::join(block_names(), ", "));
    return found->second;
  }

  torch::jit::Module module_;
  nlohmann::json metadata_;
  std::string source_;
  int64_t feature_dim_ = 0;
  std::map<std::string, torch::jit::Module> blocks_;
};

Backbone load_torchscript(std::istream& in, const std::string& source) {
  torch::jit::ExtraFilesMap extra{{kMetadataFile, ""}};
  torch::jit::Module module;
  try {
    module = torch::jit::load(in, torch::kCPU, extra);
  } catch (const c10::Error& error) {
    fail(
        "{} is not a TorchScript module that garmentnet can load ({}); export one with "
        "tools/export_torchvision_backbone.py",
        source, error.what_without_backtrace());
  }
  nlohmann::json metadata = nlohmann::json::object();
  if (!extra[kMetadataFile].empty()) {
    metadata = nlohmann::json::parse(extra[kMetadataFile], nullptr, /*allow_exceptions=*/false);
    if (!metadata.is_object())
      fail(
          "{}: its {} metadata is not a JSON object; export it again with "
          "tools/export_torchvision_backbone.py",
          source, kMetadataFile);
  }
  return make_backbone<TorchScriptBackboneImpl>(std::move(module), std::move(metadata), source);
}

const ContainerKind kBackboneFile{
    .magic = "GARMENTNET-BBONE",
    .version = 2,
    .description = "garmentnet backbone file",
    .remedy =
        "write it with `garmentnet pretrain`, or pass a native backbone name or "
        "torchscript:FILE",
};

}  // namespace

Backbone load_torchscript_backbone(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read TorchScript backbone {}: no such file or not readable", path.string());
  return load_torchscript(in, path.string());
}

Backbone load_torchscript_backbone_from_bytes(const std::string& bytes, const std::string& source) {
  std::istringstream in(bytes);
  return load_torchscript(in, source);
}

std::string torchscript_bytes(const Backbone& backbone) {
  const auto* scripted = dynamic_cast<const TorchScriptBackboneImpl*>(backbone.get());
  return scripted ? scripted->bytes() : std::string();
}

Backbone backbone_from_architecture(const nlohmann::json& architecture,
                                    const std::string& torchscript, const std::string& source) {
  const std::string kind = architecture.value("kind", "");
  if (kind == "native") return make_native_backbone(architecture.value("architecture", ""));
  if (kind == "torchscript") {
    if (torchscript.empty())
      fail("{} names a TorchScript backbone but does not contain it; write the file anew", source);
    return load_torchscript_backbone_from_bytes(torchscript,
                                                source + " (embedded TorchScript backbone)");
  }
  if (kind == "int8") return quantized_backbone_from_architecture(architecture, source);
  fail("{} describes a backbone of unknown kind '{}'; write the file anew with this garmentnet",
       source, kind);
}

Backbone open_backbone(const std::string& spec) {
  const auto names = native_backbone_names();
  if (std::find(names.begin(), names.end(), spec) != names.end()) return make_native_backbone(spec);
  constexpr std::string_view kTorchScriptPrefix = "torchscript:";
  if (spec.starts_with(kTorchScriptPrefix))
    return load_torchscript_backbone(spec.substr(kTorchScriptPrefix.size()));
  if (!std::filesystem::exists(spec))
    fail(
        "backbone '{}' is neither a backbone name ({}) nor an existing file; name one of these, "
        "torchscript:FILE, or a backbone file written by `garmentnet pretrain`",
        spec, fmt::join(names, ", "));
  if (has_container_magic(spec, kBackboneFile)) return load_backbone_file(spec);
  return load_torchscript_backbone(spec);
}

void save_backbone_file(const Backbone& backbone, const std::filesystem::path& path,
                        const nlohmann::json& metadata) {
  nlohmann::json document{{"architecture", backbone->architecture()},
                          {"feature_dim", backbone->feature_dim()},
                          {"blocks", backbone->block_names()},
                          {"metadata", metadata}};
  std::vector<std::pair<std::string, std::string>> sections;
  if (std::string scripted = torchscript_bytes(backbone); !scripted.empty()) {
    sections.emplace_back("torchscript", std::move(scripted));
  } else {
    std::ostringstream weights;
    torch::save(backbone, weights);
    sections.emplace_back("weights", weights.str());
  }
  write_container(path, kBackboneFile, std::move(document), sections);
}

Backbone load_backbone_file(const std::filesystem::path& path, nlohmann::json* metadata) {
  ContainerContents contents = read_container(path, kBackboneFile);
  const std::string source = path.string();
  Backbone backbone =
      backbone_from_architecture(contents.document.value("architecture", nlohmann::json()),
                                 contents.sections["torchscript"], source);
  if (backbone->is_serializable()) {
    std::istringstream weights(contents.sections["weights"]);
    try {
      torch::load(backbone, weights);
    } catch (const c10::Error& error) {
      fail("{}: its weights do not fit its architecture ({}); write the file anew", source,
           error.what_without_backtrace());
    }
  }
  if (metadata) *metadata = contents.document.value("metadata", nlohmann::json::object());
  return backbone;
}

}  // namespace garmentnet
