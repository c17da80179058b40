// Backbones: networks that turn normalised images [N, 3, H, W] into pooled feature vectors
// [N, feature_dim]. Native architectures (small_cnn, resnet18, resnet50, mobilenet_v2, vgg16) and
// TorchScript feature extractors exported with tools/export_torchvision_backbone.py share one
// interface, so the multi-task model, the trainer and the model file never care which one it is.
//
// Blocks: every backbone names its blocks in input-to-output order (e.g. "stem", "layer1" …
// "layer4"), so transfer learning can freeze the backbone and unfreeze the last k blocks.
// A frozen block's parameters stop requiring gradients and the block stays in eval mode, so its
// batch-norm statistics stay as they were too (a frozen backbone computes the same features in
// training and evaluation, which is what a feature cache relies on).
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "data/image.h"

namespace garmentnet {

class BackboneImpl : public torch::nn::Module {
 public:
  // Pooled features [N, feature_dim()] of normalised float images [N, 3, H, W].
  virtual torch::Tensor forward(torch::Tensor images) = 0;
  // Length of the feature vector.
  virtual int64_t feature_dim() const = 0;
  // What rebuilds this backbone's architecture (weights are stored separately), e.g.
  // {"kind": "native", "architecture": "resnet18"}; stored in model and backbone files.
  virtual nlohmann::json architecture() const = 0;
  // Preprocessing the weights were trained for, when the backbone knows it (an exported torchvision
  // backbone records ImageNet's input size and mean/std); std::nullopt for native backbones.
  virtual std::optional<Preprocessing> expected_preprocessing() const { return std::nullopt; }

  // Block names, input to output.
  const std::vector<std::string>& block_names() const { return block_names_; }
  // The parameters of one block; InputError naming the valid blocks if `block` is unknown.
  virtual std::vector<torch::Tensor> block_parameters(const std::string& block) = 0;

  // Freezes every block.
  void freeze();
  // Freezes every block except the last `count` (count >= number of blocks unfreezes all).
  void unfreeze_last_blocks(size_t count);
  // Unfreezes every block.
  void unfreeze() { unfreeze_last_blocks(block_names_.size()); }
  bool is_frozen(const std::string& block) const { return frozen_blocks_.contains(block); }
  // Parameters that currently require gradients.
  std::vector<torch::Tensor> trainable_parameters();

  // Train/eval mode that keeps frozen blocks in eval mode.
  void train(bool on = true) override;

 protected:
  // Subclasses call this once from their constructor.
  void set_block_names(std::vector<std::string> names) { block_names_ = std::move(names); }
  // Puts one block in train or eval mode.
  virtual void set_block_training(const std::string& block, bool on) = 0;

 private:
  void apply_freezing();

  std::vector<std::string> block_names_;
  std::set<std::string> frozen_blocks_;
};

TORCH_MODULE(Backbone);

// Wraps a new concrete backbone (Backbone's forwarding constructor would build the abstract base).
template <typename Impl, typename... Args>
Backbone make_backbone(Args&&... args) {
  return Backbone(
      std::shared_ptr<BackboneImpl>(std::make_shared<Impl>(std::forward<Args>(args)...)));
}

// The native architectures, e.g. {"small_cnn", "resnet18", "resnet50", "mobilenet_v2", "vgg16"}.
std::vector<std::string> native_backbone_names();

// A native backbone with fresh (random) weights; InputError listing the choices if `name` is
// unknown. Seed torch (torch::manual_seed) first for reproducible weights.
Backbone make_native_backbone(const std::string& name);

// A TorchScript feature extractor (see tools/export_torchvision_backbone.py) read from a file or
// from the bytes of one. Its output may be [N, C] or [N, C, H, W] (then averaged over H, W).
// Blocks are its top-level child modules that hold parameters; when only one child holds them
// (e.g. a `features` Sequential), that child's children are the blocks instead.
Backbone load_torchscript_backbone(const std::filesystem::path& path);
Backbone load_torchscript_backbone_from_bytes(const std::string& bytes, const std::string& source);

// The bytes of a TorchScript backbone's module with its current weights (for embedding in a
// model file); empty for native backbones.
std::string torchscript_bytes(const Backbone& backbone);

// Rebuilds a backbone from architecture() JSON: native → fresh weights (load the saved ones next);
// torchscript → the module in `torchscript` (its weights included). `source` names the file in
// errors.
Backbone backbone_from_architecture(const nlohmann::json& architecture,
                                    const std::string& torchscript, const std::string& source);

// One way to name a backbone on the command line:
//   "resnet18" (any native name)  → fresh weights
//   "torchscript:FILE"            → an exported TorchScript feature extractor
//   "FILE"                        → a backbone file written by save_backbone_file (e.g.
//                                   `garmentnet pretrain`'s backbone.pt) or a TorchScript file
Backbone open_backbone(const std::string& spec);

// A backbone file holds one backbone's architecture and weights plus free metadata (e.g. what it
// was pretrained on). Format: see docs/model-format.md. Written atomically.
void save_backbone_file(const Backbone& backbone, const std::filesystem::path& path,
                        const nlohmann::json& metadata = nlohmann::json::object());
// Reads a backbone file; `metadata`, when given, receives the stored metadata. InputError naming
// the file for a missing, truncated, foreign or other-version file.
Backbone load_backbone_file(const std::filesystem::path& path, nlohmann::json* metadata = nullptr);

}  // namespace garmentnet
