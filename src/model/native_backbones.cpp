// The native backbones. Module and parameter names follow torchvision's (conv1, bn1, layer1.0…,
// features.N…), so a torchvision state dict without its classifier maps onto these one to one;
// the parameter counts equal torchvision's feature extractors (checked by the unit tests).
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/nn/functional/pooling.h>
#include <torch/nn/init.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/pooling.h>

#include <map>

#include "core/error.h"
#include "model/backbone.h"

namespace garmentnet {
namespace {

namespace nn = torch::nn;

// A native backbone: blocks are groups of its submodules, named by their module paths.
class NativeBackboneImpl : public BackboneImpl {
 public:
  explicit NativeBackboneImpl(std::string name) : name_(std::move(name)) {}

  nlohmann::json architecture() const override {
    return {{"kind", "native"}, {"architecture", name_}};
  }

  std::vector<torch::Tensor> block_parameters(const std::string& block) override {
    std::vector<torch::Tensor> parameters;
    for (const auto& module : block_modules(block)) {
      const auto block_params = module->parameters();
      parameters.insert(parameters.end(), block_params.begin(), block_params.end());
    }
    return parameters;
  }

 protected:
  // Declares the blocks, input to output: block name → paths of the modules it consists of.
  void set_blocks(std::vector<std::pair<std::string, std::vector<std::string>>> blocks) {
    std::vector<std::string> names;
    for (const auto& [name, members] : blocks) names.push_back(name);
    block_members_ = {blocks.begin(), blocks.end()};
    set_block_names(std::move(names));
  }

  void set_block_training(const std::string& block, bool on) override {
    for (const auto& module : block_modules(block)) module->train(on);
  }

  // Initialisation as torchvision does it: He-normal (fan-out) convolutions, unit batch norms.
  void init_weights() {
    for (const auto& module : modules(/*include_self=*/false)) {
      if (auto* conv = module->as<nn::Conv2d>()) {
        nn::init::kaiming_normal_(conv->weight, 0.0, torch::kFanOut, torch::kReLU);
        if (conv->bias.defined()) nn::init::zeros_(conv->bias);
      } else if (auto* norm = module->as<nn::BatchNorm2d>()) {
        nn::init::ones_(norm->weight);
        nn::init::zeros_(norm->bias);
      }
    }
  }

 private:
  std::vector<std::shared_ptr<nn::Module>> block_modules(const std::string& block) {
    const auto found = block_members_.find(block);
    if (found == block_members_.end())
      fail("backbone {} has no block '{}'; its blocks are {}", name_, block,
           fmt::join(block_names(), ", "));
    const auto all = named_modules("", /*include_self=*/false);
    std::vector<std::shared_ptr<nn::Module>> result;
    for (const auto& path : found->second) result.push_back(all[path]);
    return result;
  }

  std::string name_;
  std::map<std::string, std::vector<std::string>> block_members_;
};

torch::Tensor global_average_pool(const torch::Tensor& maps) {
  return torch::nn::functional::adaptive_avg_pool2d(
             maps, torch::nn::functional::AdaptiveAvgPool2dFuncOptions(1))
      .flatten(1);
}

nn::Conv2d conv(int64_t in, int64_t out, int64_t kernel, int64_t stride = 1, int64_t groups = 1,
                bool bias = false) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, kernel)
                        .stride(stride)
                        .padding((kernel - 1) / 2)
                        .groups(groups)
                        .bias(bias));
}

// ---- small_cnn: four conv-bn-relu stages (32, 64, 128, 256 channels), pooled between stages.

class SmallCnnImpl : public NativeBackboneImpl {
 public:
  SmallCnnImpl() : NativeBackboneImpl("small_cnn") {
    int64_t in = 3;
    const std::vector<int64_t> widths{32, 64, 128, 256};
    std::vector<std::pair<std::string, std::vector<std::string>>> blocks;
    for (size_t i = 0; i < widths.size(); ++i) {
      nn::Sequential stage(conv(in, widths[i], 3), nn::BatchNorm2d(widths[i]),
                           nn::ReLU(nn::ReLUOptions(true)));
      if (i + 1 < widths.size()) stage->push_back(nn::MaxPool2d(nn::MaxPool2dOptions(2)));
      const std::string name = fmt::format("block{}", i + 1);
      stages_.push_back(register_module(name, stage));
      blocks.push_back({name, {name}});
      in = widths[i];
    }
    set_blocks(std::move(blocks));
    init_weights();
  }

  torch::Tensor forward(torch::Tensor images) override {
    for (auto& stage : stages_) images = stage->forward(images);
    return global_average_pool(images);
  }
  int64_t feature_dim() const override { return 256; }

 private:
  std::vector<nn::Sequential> stages_;
};

// ---- ResNet (He et al. 2015), torchvision layout.

// Two 3×3 convolutions (resnet18/34).
class BasicBlockImpl : public nn::Module {
 public:
  static constexpr int64_t kExpansion = 1;
  BasicBlockImpl(int64_t in, int64_t planes, int64_t stride, nn::Sequential shortcut)
      : conv1(register_module("conv1", conv(in, planes, 3, stride))),
        bn1(register_module("bn1", nn::BatchNorm2d(planes))),
        conv2(register_module("conv2", conv(planes, planes, 3))),
        bn2(register_module("bn2", nn::BatchNorm2d(planes))),
        downsample(shortcut) {
    if (downsample) register_module("downsample", downsample);
  }
  torch::Tensor forward(torch::Tensor x) {
    torch::Tensor out = torch::relu(bn1(conv1(x)));
    out = bn2(conv2(out));
    return torch::relu(out + (downsample ? downsample->forward(x) : x));
  }
  nn::Conv2d conv1;
  nn::BatchNorm2d bn1;
  nn::Conv2d conv2;
  nn::BatchNorm2d bn2;
  nn::Sequential downsample;
};

// 1×1 reduce, 3×3, 1×1 expand (resnet50 and deeper); stride on the 3×3 as torchvision does.
class BottleneckImpl : public nn::Module {
 public:
  static constexpr int64_t kExpansion = 4;
  BottleneckImpl(int64_t in, int64_t planes, int64_t stride, nn::Sequential shortcut)
      : conv1(register_module("conv1", conv(in, planes, 1))),
        bn1(register_module("bn1", nn::BatchNorm2d(planes))),
        conv2(register_module("conv2", conv(planes, planes, 3, stride))),
        bn2(register_module("bn2", nn::BatchNorm2d(planes))),
        conv3(register_module("conv3", conv(planes, planes * kExpansion, 1))),
        bn3(register_module("bn3", nn::BatchNorm2d(planes * kExpansion))),
        downsample(shortcut) {
    if (downsample) register_module("downsample", downsample);
  }
  torch::Tensor forward(torch::Tensor x) {
    torch::Tensor out = torch::relu(bn1(conv1(x)));
    out = torch::relu(bn2(conv2(out)));
    out = bn3(conv3(out));
    return torch::relu(out + (downsample ? downsample->forward(x) : x));
  }
  nn::Conv2d conv1;
  nn::BatchNorm2d bn1;
  nn::Conv2d conv2;
  nn::BatchNorm2d bn2;
  nn::Conv2d conv3;
  nn::BatchNorm2d bn3;
  nn::Sequential downsample;
};

template <typename BlockImpl>
class ResNetImpl : public NativeBackboneImpl {
 public:
  ResNetImpl(std::string name, std::array<int64_t, 4> depths)
      : NativeBackboneImpl(std::move(name)),
        conv1(register_module(
            "conv1", nn::Conv2d(nn::Conv2dOptions(3, 64, 7).stride(2).padding(3).bias(false)))),
        bn1(register_module("bn1", nn::BatchNorm2d(64))) {
    const std::array<int64_t, 4> planes{64, 128, 256, 512};
    for (size_t i = 0; i < 4; ++i)
      layers_.push_back(register_module(fmt::format("layer{}", i + 1),
                                        make_layer(planes[i], depths[i], i == 0 ? 1 : 2)));
    set_blocks({{"stem", {"conv1", "bn1"}},
                {"layer1", {"layer1"}},
                {"layer2", {"layer2"}},
                {"layer3", {"layer3"}},
                {"layer4", {"layer4"}}});
    init_weights();
  }

  torch::Tensor forward(torch::Tensor images) override {
    torch::Tensor x = torch::relu(bn1(conv1(images)));
    x = torch::max_pool2d(x, 3, 2, 1);
    for (auto& layer : layers_) x = layer->forward(x);
    return global_average_pool(x);
  }
  int64_t feature_dim() const override { return 512 * BlockImpl::kExpansion; }

 private:
  nn::Sequential make_layer(int64_t planes, int64_t depth, int64_t stride) {
    nn::Sequential downsample{nullptr};
    const int64_t out = planes * BlockImpl::kExpansion;
    if (stride != 1 || in_ != out)
      downsample = nn::Sequential(conv(in_, out, 1, stride), nn::BatchNorm2d(out));
    nn::Sequential layer;
    layer->push_back(std::make_shared<BlockImpl>(in_, planes, stride, downsample));
    in_ = out;
    for (int64_t i = 1; i < depth; ++i)
      layer->push_back(std::make_shared<BlockImpl>(in_, planes, 1, nn::Sequential{nullptr}));
    return layer;
  }

  int64_t in_ = 64;
  nn::Conv2d conv1;
  nn::BatchNorm2d bn1;
  std::vector<nn::Sequential> layers_;
};

// ---- MobileNetV2 (Sandler et al. 2018), torchvision layout, width multiplier 1.

// Convolution, batch norm, ReLU6 (torchvision's Conv2dNormActivation). A Sequential subclass with
// a plain forward, because a bare Sequential cannot be nested in another one.
class ConvBnReLU6Impl : public nn::SequentialImpl {
 public:
  ConvBnReLU6Impl(int64_t in, int64_t out, int64_t kernel, int64_t stride = 1, int64_t groups = 1) {
    push_back(conv(in, out, kernel, stride, groups));
    push_back(nn::BatchNorm2d(out));
    push_back(nn::ReLU6(nn::ReLU6Options(true)));
  }
  torch::Tensor forward(torch::Tensor x) { return nn::SequentialImpl::forward(x); }
};
TORCH_MODULE(ConvBnReLU6);

class InvertedResidualImpl : public nn::Module {
 public:
  InvertedResidualImpl(int64_t in, int64_t out, int64_t stride, int64_t expand_ratio)
      : residual_(stride == 1 && in == out) {
    const int64_t hidden = in * expand_ratio;
    nn::Sequential layers;
    if (expand_ratio != 1) layers->push_back(ConvBnReLU6(in, hidden, 1));
    layers->push_back(ConvBnReLU6(hidden, hidden, 3, stride, hidden));
    layers->push_back(conv(hidden, out, 1));
    layers->push_back(nn::BatchNorm2d(out));
    conv_ = register_module("conv", layers);
  }
  torch::Tensor forward(torch::Tensor x) {
    return residual_ ? x + conv_->forward(x) : conv_->forward(x);
  }

 private:
  bool residual_;
  nn::Sequential conv_{nullptr};
};
TORCH_MODULE(InvertedResidual);

class MobileNetV2Impl : public NativeBackboneImpl {
 public:
  MobileNetV2Impl() : NativeBackboneImpl("mobilenet_v2") {
    struct Stage {
      int64_t expand_ratio, channels, repeats, stride;
    };
    const std::vector<Stage> stages{{1, 16, 1, 1}, {6, 24, 2, 2},  {6, 32, 3, 2}, {6, 64, 4, 2},
                                    {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
    int64_t in = 32;
    features_->push_back(ConvBnReLU6(3, in, 3, 2));
    for (const auto& stage : stages)
      for (int64_t i = 0; i < stage.repeats; ++i) {
        features_->push_back(
            InvertedResidual(in, stage.channels, i == 0 ? stage.stride : 1, stage.expand_ratio));
        in = stage.channels;
      }
    features_->push_back(ConvBnReLU6(in, kLastChannels, 1));
    register_module("features", features_);
    std::vector<std::pair<std::string, std::vector<std::string>>> blocks;
    for (size_t i = 0; i < features_->size(); ++i) {
      const std::string path = fmt::format("features.{}", i);
      blocks.push_back({path, {path}});
    }
    set_blocks(std::move(blocks));
    init_weights();
  }

  torch::Tensor forward(torch::Tensor images) override {
    return global_average_pool(features_->forward(images));
  }
  int64_t feature_dim() const override { return kLastChannels; }

 private:
  static constexpr int64_t kLastChannels = 1280;
  nn::Sequential features_;
};

// ---- VGG16 (configuration D), convolutional part, then a global average pool.

class Vgg16Impl : public NativeBackboneImpl {
 public:
  Vgg16Impl() : NativeBackboneImpl("vgg16") {
    // Channels of the convolutions of each stage; every stage ends with a 2×2 max pool.
    const std::vector<std::vector<int64_t>> stages{
        {64, 64}, {128, 128}, {256, 256, 256}, {512, 512, 512}, {512, 512, 512}};
    int64_t in = 3;
    std::vector<std::pair<std::string, std::vector<std::string>>> blocks;
    for (size_t s = 0; s < stages.size(); ++s) {
      std::vector<std::string> convs;
      for (int64_t out : stages[s]) {
        convs.push_back(fmt::format("features.{}", features_->size()));
        features_->push_back(conv(in, out, 3, 1, 1, /*bias=*/true));
        features_->push_back(nn::ReLU(nn::ReLUOptions(true)));
        in = out;
      }
      features_->push_back(nn::MaxPool2d(nn::MaxPool2dOptions(2)));
      blocks.push_back({fmt::format("block{}", s + 1), convs});  // Keras's VGG16 block names
    }
    register_module("features", features_);
    set_blocks(std::move(blocks));
    init_weights();
  }

  torch::Tensor forward(torch::Tensor images) override {
    return global_average_pool(features_->forward(images));
  }
  int64_t feature_dim() const override { return 512; }

 private:
  nn::Sequential features_;
};

}  // namespace

std::vector<std::string> native_backbone_names() {
  return {"small_cnn", "resnet18", "resnet50", "mobilenet_v2", "vgg16"};
}

Backbone make_native_backbone(const std::string& name) {
  if (name == "small_cnn") return make_backbone<SmallCnnImpl>();
  if (name == "resnet18")
    return make_backbone<ResNetImpl<BasicBlockImpl>>(name, std::array<int64_t, 4>{2, 2, 2, 2});
  if (name == "resnet50")
    return make_backbone<ResNetImpl<BottleneckImpl>>(name, std::array<int64_t, 4>{3, 4, 6, 3});
  if (name == "mobilenet_v2") return make_backbone<MobileNetV2Impl>();
  if (name == "vgg16") return make_backbone<Vgg16Impl>();
  fail("unknown backbone '{}'; choose one of {}, or torchscript:FILE, or a backbone file", name,
       fmt::join(native_backbone_names(), ", "));
}

}  // namespace garmentnet
