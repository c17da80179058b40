#include "model/quantized_backbone.h"

#include <ATen/Parallel.h>
#include <ATen/native/quantized/PackedParams.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/frontend/resolver.h>
#include <torch/csrc/jit/frontend/tracer.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/types.h>
#include <torch/utils.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>

#include "core/error.h"
#include "core/log.h"

namespace garmentnet {
namespace {

// Resolves `torch.*` to ATen, as define() does by default, and `quantized.*` to the
// quantized operators (the C++ compiler has no `torch.ops`); a saved module spells them
// `ops.quantized.*`, which both C++ and Python loaders read.
struct QuantizedOpsResolver : torch::jit::Resolver {
  std::shared_ptr<torch::jit::SugaredValue> resolveValue(const std::string& name,
                                                         torch::jit::GraphFunction&,
                                                         const torch::jit::SourceRange&) override {
    if (name == "torch") return std::make_shared<torch::jit::BuiltinModule>("aten");
    if (name == "quantized") return std::make_shared<torch::jit::BuiltinModule>("quantized");
    return nullptr;
  }
  torch::jit::TypePtr resolveType(const std::string&, const torch::jit::SourceRange&) override {
    return nullptr;
  }
};

using IntList = std::vector<int64_t>;
using PackedConv = c10::intrusive_ptr<ConvPackedParamsBase<2>>;

// The activation fused into a convolution or an addition.
enum class Activation { None, Relu, Relu6 };

std::string_view activation_name(Activation activation) {
  switch (activation) {
    case Activation::None:
      return "none";
    case Activation::Relu:
      return "relu";
    case Activation::Relu6:
      return "relu6";
  }
  return "none";
}

Activation activation_from_name(const std::string& name, const std::string& source) {
  for (Activation a : {Activation::None, Activation::Relu, Activation::Relu6})
    if (activation_name(a) == name) return a;
  fail("{} is a corrupt int8 model (unknown activation '{}'); quantize the model anew", source,
       name);
}

enum class StepKind { Conv, Add, MaxPool, GlobalPool };
constexpr std::array<std::pair<StepKind, std::string_view>, 4> kStepNames{
    {{StepKind::Conv, "conv"},
     {StepKind::Add, "add"},
     {StepKind::MaxPool, "max_pool"},
     {StepKind::GlobalPool, "global_average_pool"}}};

std::string_view step_name(StepKind kind) {
  for (const auto& [k, name] : kStepNames)
    if (k == kind) return name;
  return "";
}

// One step of the program. Values are numbered: 0 is the input images, each step writes one.
struct Step {
  StepKind kind = StepKind::Conv;
  std::vector<int> inputs;
  int output = 0;
  Activation activation = Activation::None;                 // conv, add
  IntList weight_shape, stride, padding, dilation, kernel;  // conv: all but kernel; max pool
  int64_t groups = 1;                                       // conv
  bool ceil_mode = false;                                   // max pool
  at::Tensor weight, bias;  // conv, fp32 with batch norm folded in (calibration only)

  nlohmann::json to_json() const {
    nlohmann::json json{{"op", step_name(kind)}, {"inputs", inputs}, {"output", output}};
    if (kind == StepKind::Conv || kind == StepKind::Add)
      json["activation"] = activation_name(activation);
    if (kind == StepKind::Conv) {
      json["weight_shape"] = weight_shape;
      json["groups"] = groups;
    }
    if (kind == StepKind::Conv || kind == StepKind::MaxPool) {
      json["stride"] = stride;
      json["padding"] = padding;
      json["dilation"] = dilation;
    }
    if (kind == StepKind::MaxPool) {
      json["kernel"] = kernel;
      json["ceil_mode"] = ceil_mode;
    }
    return json;
  }

  static Step from_json(const nlohmann::json& json, const std::string& source) {
    Step step;
    try {
      const std::string op = json.at("op").get<std::string>();
      const auto found = std::find_if(kStepNames.begin(), kStepNames.end(),
                                      [&](const auto& entry) { return entry.second == op; });
      if (found == kStepNames.end()) fail("unknown step '{}'", op);
      step.kind = found->first;
      step.inputs = json.at("inputs").get<std::vector<int>>();
      step.output = json.at("output").get<int>();
      if (json.contains("activation"))
        step.activation = activation_from_name(json["activation"].get<std::string>(), source);
      step.weight_shape = json.value("weight_shape", IntList{});
      step.groups = json.value("groups", int64_t{1});
      step.stride = json.value("stride", IntList{});
      step.padding = json.value("padding", IntList{});
      step.dilation = json.value("dilation", IntList{});
      step.kernel = json.value("kernel", IntList{});
      step.ceil_mode = json.value("ceil_mode", false);
    } catch (const nlohmann::json::exception& error) {
      fail("{} is a corrupt int8 model (bad program step: {}); quantize the model anew", source,
           error.what());
    }
    return step;
  }
};

// The steps and which value each step's output is last read by (so values can be freed early).
struct Program {
  std::vector<Step> steps;
  int values = 1;  // number of values, the input included
  int output = 0;  // the value holding the pooled features

  nlohmann::json to_json() const {
    nlohmann::json steps_json = nlohmann::json::array();
    for (const auto& step : steps) steps_json.push_back(step.to_json());
    return {{"values", values}, {"output", output}, {"steps", steps_json}};
  }
};

// ---- Tracing a backbone into a program

IntList int_list(const torch::jit::Value* value) {
  if (const auto constant = torch::jit::toIValue(value)) return constant->toIntVector();
  const torch::jit::Node* node = value->node();
  if (node->kind() != c10::prim::ListConstruct) fail_internal("expected a constant int list");
  IntList result;
  for (const torch::jit::Value* item : node->inputs())
    result.push_back(torch::jit::toIValue(item)->toInt());
  return result;
}

// A constant int or float (the tracer records `x + y`'s alpha as an int).
double constant_number(const torch::jit::Value* value) {
  return torch::jit::toIValue(value)->toScalar().to<double>();
}

// A 2-D pooling or convolution argument: `max_pool2d(x, 3, 2, 1)` records one-element lists,
// which the quantized max pool does not accept.
IntList two_d(IntList values) {
  if (values.size() == 1) values.push_back(values[0]);
  return values;
}

at::Tensor constant_tensor(const torch::jit::Value* value) {
  const auto constant = torch::jit::toIValue(value);
  if (!constant || constant->isNone()) return {};
  return constant->toTensor();
}

class ProgramBuilder {
 public:
  ProgramBuilder(std::string backbone) : backbone_(std::move(backbone)) {}

  Program build(const torch::jit::Graph& graph) {
    value_of_[graph.inputs().at(0)] = 0;
    for (const torch::jit::Node* node : graph.nodes()) add(node);
    const torch::jit::Value* output = graph.outputs().at(0);
    const int out = value(output);
    if (!pooled_.contains(out)) refuse("its output is not a global average pool of feature maps");
    program_.output = out;
    return std::move(program_);
  }

 private:
  [[noreturn]] void refuse(const std::string& why) const {
    fail(
        "cannot quantize backbone {} to int8: {}; int8 supports the native backbones built of "
        "convolutions, batch norms, ReLU/ReLU6, additions, max pools and a global average pool",
        backbone_, why);
  }

  int value(const torch::jit::Value* v) const {
    const auto found = value_of_.find(v);
    if (found == value_of_.end())
      refuse(fmt::format("value '{}' comes from an unsupported operation", v->debugName()));
    return found->second;
  }

  // The step writing `v`, when `v` is read only by `reader` (so a later operation can be fused in).
  Step* sole_producer(const torch::jit::Value* v) {
    if (v->uses().size() != 1) return nullptr;
    const int id = value(v);
    for (auto& step : program_.steps)
      if (step.output == id) return &step;
    return nullptr;
  }

  int new_step(Step step, const torch::jit::Value* output) {
    step.output = program_.values++;
    value_of_[output] = step.output;
    program_.steps.push_back(std::move(step));
    return program_.steps.back().output;
  }

  void add(const torch::jit::Node* node) {
    const std::string kind = node->kind().toQualString();
    if (kind == "prim::Constant" || kind == "prim::ListConstruct") return;
    const auto in = [&](size_t i) { return node->input(i); };
    if (kind == "aten::conv2d" || kind == "aten::_convolution") {
      Step step;
      step.kind = StepKind::Conv;
      step.inputs = {value(in(0))};
      step.weight = constant_tensor(in(1));
      step.bias = constant_tensor(in(2));
      if (!step.weight.defined()) refuse("a convolution's weights are not constants");
      step.weight_shape = step.weight.sizes().vec();
      step.stride = int_list(in(3));
      step.padding = int_list(in(4));
      step.dilation = int_list(in(5));
      if (kind == "aten::_convolution" && torch::jit::toIValue(in(6))->toBool())
        refuse("transposed convolutions are not supported");
      step.groups = torch::jit::toIValue(in(kind == "aten::conv2d" ? 6 : 8))->toInt();
      if (step.stride.size() != 2 || step.padding.size() != 2)
        refuse("only 2-D convolutions are supported");
      if (!step.bias.defined()) step.bias = torch::zeros({step.weight_shape[0]});
      new_step(std::move(step), node->output());
    } else if (kind == "aten::batch_norm") {
      Step* conv = sole_producer(in(0));
      if (conv == nullptr || conv->kind != StepKind::Conv || conv->activation != Activation::None)
        refuse("a batch norm does not directly follow a convolution");
      const at::Tensor gamma = constant_tensor(in(1)), beta = constant_tensor(in(2));
      const at::Tensor mean = constant_tensor(in(3)), var = constant_tensor(in(4));
      const double eps = constant_number(in(7));
      const at::Tensor scale = gamma / torch::sqrt(var + eps);
      conv->weight = conv->weight * scale.reshape({-1, 1, 1, 1});
      conv->bias = (conv->bias - mean) * scale + beta;
      value_of_[node->output()] = conv->output;
    } else if (kind == "aten::relu" || kind == "aten::relu_" || kind == "aten::relu6" ||
               kind == "aten::relu6_" || kind == "aten::hardtanh" || kind == "aten::hardtanh_") {
      Activation activation =
          kind.starts_with("aten::relu6") ? Activation::Relu6 : Activation::Relu;
      if (kind.starts_with("aten::hardtanh")) {
        if (constant_number(in(1)) != 0.0 || constant_number(in(2)) != 6.0)
          refuse("hardtanh other than ReLU6 is not supported");
        activation = Activation::Relu6;
      }
      Step* producer = sole_producer(in(0));
      if (producer == nullptr ||
          (producer->kind != StepKind::Conv && producer->kind != StepKind::Add) ||
          producer->activation != Activation::None ||
          (activation == Activation::Relu6 && producer->kind != StepKind::Conv))
        refuse("an activation does not directly follow a convolution or an addition");
      producer->activation = activation;
      value_of_[node->output()] = producer->output;
    } else if (kind == "aten::add" || kind == "aten::add_") {
      if (constant_number(in(2)) != 1.0) refuse("scaled additions");
      Step step;
      step.kind = StepKind::Add;
      step.inputs = {value(in(0)), value(in(1))};
      new_step(std::move(step), node->output());
    } else if (kind == "aten::max_pool2d") {
      Step step;
      step.kind = StepKind::MaxPool;
      step.inputs = {value(in(0))};
      step.kernel = two_d(int_list(in(1)));
      step.stride = two_d(int_list(in(2)));
      step.padding = two_d(int_list(in(3)));
      step.dilation = two_d(int_list(in(4)));
      step.ceil_mode = torch::jit::toIValue(in(5))->toBool();
      if (step.stride.empty()) step.stride = step.kernel;
      new_step(std::move(step), node->output());
    } else if (kind == "aten::adaptive_avg_pool2d") {
      if (int_list(in(1)) != IntList{1, 1}) refuse("adaptive pooling to more than 1x1");
      Step step;
      step.kind = StepKind::GlobalPool;
      step.inputs = {value(in(0))};
      pooled_.insert(new_step(std::move(step), node->output()));
    } else if (kind == "aten::flatten") {
      const int pooled = value(in(0));
      if (!pooled_.contains(pooled) || torch::jit::toIValue(in(1))->toInt() != 1)
        refuse("flatten other than of the pooled features");
      value_of_[node->output()] = pooled;  // the pooled step already outputs [N, C]
    } else {
      refuse(fmt::format("operation {} is not supported", kind));
    }
  }

  std::string backbone_;
  Program program_;
  std::map<const torch::jit::Value*, int> value_of_;
  std::set<int> pooled_;
};

Program trace_program(const Backbone& backbone, int height, int width) {
  const nlohmann::json architecture = backbone->architecture();
  const std::string name = architecture.value("architecture", architecture.dump());
  if (is_quantized(backbone)) fail("the model is already int8; quantize its fp32 model instead");
  if (architecture.value("kind", "") != "native")
    fail(
        "cannot quantize this model to int8: its backbone was imported from TorchScript; int8 "
        "supports the native backbones ({})",
        fmt::join(native_backbone_names(), ", "));
  if (backbone->is_training()) fail_internal("trace_program needs a backbone in eval mode");
  // The tracer takes weights that need no gradient as constants. The backbone is the caller's:
  // its flags are put back when tracing ends, however it ends.
  struct RequiresGradRestorer {
    std::vector<std::pair<at::Tensor, bool>> flags;
    ~RequiresGradRestorer() {
      for (auto& [parameter, requires_grad] : flags) parameter.requires_grad_(requires_grad);
    }
  } restorer;
  for (auto& parameter : backbone->parameters()) {
    restorer.flags.emplace_back(parameter, parameter.requires_grad());
    parameter.requires_grad_(false);
  }
  torch::NoGradGuard no_grad;
  auto generator = at::detail::createCPUGenerator(/*seed_val=*/1);
  const at::Tensor example = at::randn({1, 3, height, width}, generator, torch::kFloat);
  Backbone traced_backbone = backbone;
  const auto graph = torch::jit::tracer::trace(
                         {example},
                         [&](torch::jit::Stack inputs) -> torch::jit::Stack {
                           return {traced_backbone->forward(inputs.at(0).toTensor())};
                         },
                         [](const torch::autograd::Variable&) { return ""; })
                         .first->graph;
  return ProgramBuilder(name).build(*graph);
}

// ---- Ranges

// Both observers' statistics of one activation.
struct Range {
  double min = std::numeric_limits<double>::infinity();
  double max = -std::numeric_limits<double>::infinity();
  double low_sum = 0, high_sum = 0;  // per-batch percentiles, summed
  int batches = 0;

  void observe(const at::Tensor& values) {
    const at::Tensor flat = values.detach().flatten().to(torch::kFloat);
    min = std::min(min, flat.min().item<double>());
    max = std::max(max, flat.max().item<double>());
    // torch::quantile sorts; a strided sample of at most 2^20 values keeps that cheap.
    constexpr int64_t kSample = int64_t{1} << 20;
    const int64_t step = std::max<int64_t>(1, flat.numel() / kSample);
    const at::Tensor sample = flat.slice(0, 0, flat.numel(), step);
    const at::Tensor q = torch::quantile(sample, torch::tensor({1e-4, 1 - 1e-4}));
    low_sum += q[0].item<double>();
    high_sum += q[1].item<double>();
    ++batches;
  }

  // Scale and zero point of quint8 covering the observer's range (always including 0), in 7 bits
  // (0..127): oneDNN's int8 convolutions on CPUs without VNNI add pairs of u8×s8 products in
  // 16 bits, which saturate with 8-bit activations (measured on this AVX2-only machine, one
  // 64-channel 3×3 convolution against fp32: 32.1 dB SQNR with 8 bits, 36.9 dB with 7;
  // PyTorch's fbgemm and x86 defaults reduce the range for the same reason).
  std::pair<double, int64_t> qparams(RangeObserver observer, Activation activation) const {
    double low = observer == RangeObserver::MinMax ? min : low_sum / batches;
    double high = observer == RangeObserver::MinMax ? max : high_sum / batches;
    low = std::min(low, 0.0);
    high = std::max(high, 0.0);
    if (activation == Activation::Relu6) high = std::min(high, 6.0);
    constexpr double kLevels = 127;
    const double scale = std::max((high - low) / kLevels, 1e-8);
    const int64_t zero_point = std::clamp<int64_t>(std::llround(-low / scale), 0, int64_t(kLevels));
    return {scale, zero_point};
  }
};

// The activation a value has gone through (ReLU6 bounds the range).
Activation activation_of(const Program& program, int value) {
  for (const auto& step : program.steps)
    if (step.output == value) return step.activation;
  return Activation::None;
}

// ---- One interpreter for both precisions

// A step as people read it in a log: "step 34 (conv 1x1 96→576)".
std::string describe(const Program& program, size_t index) {
  const Step& step = program.steps[index];
  if (step.kind != StepKind::Conv) return fmt::format("step {} ({})", index, step_name(step.kind));
  const IntList& shape = step.weight_shape;
  return fmt::format("step {} (conv {}x{} {}→{}{})", index, shape[2], shape[3],
                     shape[1] * step.groups, shape[0],
                     step.groups > 1 ? fmt::format(", {} groups", step.groups) : "");
}

at::Tensor activated(at::Tensor y, Activation activation) {
  if (activation == Activation::Relu) return at::relu(y);
  if (activation == Activation::Relu6) return at::clamp(y, 0.0, 6.0);
  return y;
}

at::Tensor fp32_conv(const Step& step, const at::Tensor& weight, const at::Tensor& bias,
                     const at::Tensor& x) {
  return activated(
      at::conv2d(x, weight, bias, step.stride, step.padding, step.dilation, step.groups),
      step.activation);
}

// What the steps of a program run with: fp32 operations (calibration) or int8 ones. Steps are
// identified by their index in the program; max pooling is the same operator in both precisions.
class StepOperations {
 public:
  virtual ~StepOperations() = default;
  virtual at::Tensor input(const at::Tensor& images) = 0;
  virtual at::Tensor conv(size_t step, const at::Tensor& x) = 0;  // its activation included
  virtual at::Tensor add(size_t step, const at::Tensor& x, const at::Tensor& y) = 0;
  virtual at::Tensor global_pool(const at::Tensor& x) = 0;
};

// Runs `program` on `images`, freeing each value after the last step that reads it.
at::Tensor run_program(const Program& program, const at::Tensor& images, StepOperations& ops) {
  std::vector<size_t> last_use(size_t(program.values), 0);
  for (size_t i = 0; i < program.steps.size(); ++i)
    for (int input : program.steps[i].inputs) last_use[size_t(input)] = i;
  std::vector<at::Tensor> values(size_t(program.values));
  values[0] = ops.input(images);
  for (size_t i = 0; i < program.steps.size(); ++i) {
    const Step& step = program.steps[i];
    const at::Tensor& x = values[size_t(step.inputs[0])];
    at::Tensor y;
    switch (step.kind) {
      case StepKind::Conv:
        y = ops.conv(i, x);
        break;
      case StepKind::Add:
        y = ops.add(i, x, values[size_t(step.inputs[1])]);
        break;
      case StepKind::MaxPool:
        y = at::max_pool2d(x, step.kernel, step.stride, step.padding, step.dilation,
                           step.ceil_mode);
        break;
      case StepKind::GlobalPool:
        y = ops.global_pool(x);
        break;
    }
    for (int input : step.inputs)
      if (last_use[size_t(input)] == i) values[size_t(input)].reset();
    values[size_t(step.output)] = std::move(y);
  }
  return values[size_t(program.output)];
}

// The program in fp32 with batch norm folded in, recording each activation's range if asked to.
class Fp32Operations : public StepOperations {
 public:
  Fp32Operations(const Program& program, std::vector<Range>* ranges)
      : program_(program), ranges_(ranges) {}

  at::Tensor input(const at::Tensor& images) override { return observed(0, images); }
  at::Tensor conv(size_t i, const at::Tensor& x) override {
    const Step& step = program_.steps[i];
    return observed(step.output, fp32_conv(step, step.weight, step.bias, x));
  }
  at::Tensor add(size_t i, const at::Tensor& x, const at::Tensor& y) override {
    const Step& step = program_.steps[i];
    return observed(step.output, activated(x + y, step.activation));
  }
  at::Tensor global_pool(const at::Tensor& x) override { return x.mean({2, 3}); }

 private:
  at::Tensor observed(int value, at::Tensor y) {
    if (ranges_ != nullptr) (*ranges_)[size_t(value)].observe(y);
    return y;
  }

  const Program& program_;
  std::vector<Range>* ranges_;
};

// ---- The int8 operations

// Packs a convolution's int8 weights for oneDNN.
PackedConv pack_conv(const Step& step, const at::Tensor& weight, const at::Tensor& bias) {
  static const auto prepack =
      c10::Dispatcher::singleton().findSchemaOrThrow("quantized::conv2d_prepack", "");
  torch::jit::Stack stack{weight,
                          bias,
                          c10::List<int64_t>(step.stride),
                          c10::List<int64_t>(step.padding),
                          c10::List<int64_t>(step.dilation),
                          step.groups};
  prepack.callBoxed(&stack);
  return stack.at(0).toCustomClass<ConvPackedParamsBase<2>>();
}

// The int8 weights of one convolution step, as stored in the model file.
struct ConvWeights {
  size_t step = 0;
  at::Tensor weight;        // int8 values [out, in / groups, kh, kw]
  at::Tensor weight_scale;  // per output channel
  at::Tensor bias;          // fp32
};

// The program's steps in int8 through oneDNN, with weights packed once when the model is prepared.
// Where oneDNN fails at a step, the step is routed around on its first failure, for the life of
// the model: a convolution whose packed weights oneDNN cannot reuse at another input shape (AVX-512
// VNNI kernels reorder them for the first batch size they see, and some cannot reorder them again:
// docs/quantization.md) gets weights packed per input shape; a step that still fails runs in fp32
// between a dequantize and a quantize, with one warning naming it. Safe to use from several
// threads at once.
class Int8Operations : public StepOperations {
 public:
  Int8Operations(const Program& program, const std::vector<ConvWeights>& convs,
                 const at::Tensor& qparams)
      : program_(program), fp32_(program.steps.size()), convs_(program.steps.size()) {
    if (at::globalContext().qEngine() != at::QEngine::ONEDNN)
      fail(
          "int8 models run on LibTorch's oneDNN quantized engine, and this process uses another "
          "(garmentnet selects oneDNN where LibTorch has it)");
    const at::Tensor q = qparams.to(torch::kDouble);
    for (int v = 0; v < program.values; ++v)
      qparams_.emplace_back(q[v][0].item<double>(), std::llround(q[v][1].item<double>()));
    for (const ConvWeights& conv : convs) {
      auto kernel = std::make_unique<ConvKernel>();
      const at::Tensor scales = conv.weight_scale.to(torch::kDouble);
      kernel->weight = at::_make_per_channel_quantized_tensor(
          conv.weight, scales, torch::zeros_like(scales, torch::kLong), 0);
      kernel->bias = conv.bias;
      kernel->packed = pack_conv(program.steps[conv.step], kernel->weight, kernel->bias);
      convs_[conv.step] = std::move(kernel);
    }
    if (const char* step = std::getenv("GARMENTNET_TEST_FAIL_INT8_STEP")) {
      char* end = nullptr;
      const long long index = std::strtoll(step, &end, 10);
      if (end != step && *end == '\0') failing_step_ = index;
    }
  }

  // The weights packed for every input shape, in program order (for TorchScript export).
  std::vector<PackedConv> packed_convs() const {
    std::vector<PackedConv> packed;
    for (const auto& kernel : convs_)
      if (kernel) packed.push_back(kernel->packed);
    return packed;
  }
  const std::pair<double, int64_t>& qparams(int value) const { return qparams_[size_t(value)]; }

  std::vector<std::string> routed_around() const {
    std::vector<std::string> steps;
    for (size_t i = 0; i < program_.steps.size(); ++i) {
      if (fp32_[i].load())
        steps.push_back(describe(program_, i) + ": runs in fp32");
      else if (convs_[i] && convs_[i]->per_shape.load())
        steps.push_back(describe(program_, i) + ": weights packed per input shape");
    }
    return steps;
  }

  at::Tensor input(const at::Tensor& images) override {
    const auto [scale, zero] = qparams_[0];
    return quantize_images(images, scale, zero);
  }

  at::Tensor conv(size_t i, const at::Tensor& x) override {
    ConvKernel& kernel = *convs_[i];
    return guarded(
        i, [&](double scale, int64_t zero) { return int8_conv(i, kernel, x, scale, zero); },
        [&] {
          return fp32_conv(program_.steps[i], at::dequantize(kernel.weight), kernel.bias,
                           at::dequantize(x));
        });
  }

  at::Tensor add(size_t i, const at::Tensor& x, const at::Tensor& y) override {
    const Activation activation = program_.steps[i].activation;
    return guarded(
        i,
        [&](double scale, int64_t zero) {
          return (activation == Activation::None ? add_ : add_relu_).call(x, y, scale, zero);
        },
        [&] { return activated(at::dequantize(x) + at::dequantize(y), activation); });
  }

  // The mean of the int8 values, then dequantized: as dequantize-then-mean, without LibTorch's
  // one-thread dequantize of the whole feature map.
  at::Tensor global_pool(const at::Tensor& x) override {
    return (x.int_repr().to(torch::kFloat).mean({2, 3}) - float(x.q_zero_point())) *
           float(x.q_scale());
  }

 private:
  struct ConvKernel {
    at::Tensor weight;  // per-channel quantized
    at::Tensor bias;
    PackedConv packed;                   // for every input shape, until oneDNN fails on one
    std::atomic<bool> per_shape{false};  // then: packed anew for each input shape
    std::mutex mutex;                    // guards by_shape
    std::map<IntList, PackedConv> by_shape;
  };

  // Step `i` in int8, or in fp32 (requantized) once int8 has failed at it.
  template <class Int8, class Fp32>
  at::Tensor guarded(size_t i, const Int8& int8, const Fp32& fp32) {
    const auto [scale, zero] = qparams_[size_t(program_.steps[i].output)];
    if (!fp32_[i].load()) {
      try {
        TORCH_CHECK(failing_step_ != int64_t(i),
                    "failure injected by GARMENTNET_TEST_FAIL_INT8_STEP");
        return int8(scale, zero);
      } catch (const std::bad_alloc&) {
        throw;
      } catch (const std::exception& error) {  // oneDNN's dnnl::error or LibTorch's c10::Error
        if (!fp32_[i].exchange(true))
          spdlog::warn("int8 {} failed ({}); it runs in fp32 from now on", describe(program_, i),
                       first_line(error.what()));
      }
    }
    return at::quantize_per_tensor(fp32(), scale, zero, torch::kQUInt8);
  }

  at::Tensor int8_conv(size_t i, ConvKernel& kernel, const at::Tensor& x, double scale,
                       int64_t zero) {
    const auto apply = [&](const PackedConv& packed) {
      return program_.steps[i].activation == Activation::None ? packed->apply(x, scale, zero)
                                                              : packed->apply_relu(x, scale, zero);
    };
    if (!kernel.per_shape.load()) {
      try {
        return apply(kernel.packed);
      } catch (const std::bad_alloc&) {
        throw;
      } catch (const std::exception& error) {
        if (!kernel.per_shape.exchange(true))
          spdlog::info(
              "int8 {}: oneDNN could not reuse its packed weights for input {} ({}); they are "
              "packed per input shape from now on",
              describe(program_, i), fmt::join(x.sizes(), "x"), first_line(error.what()));
      }
    }
    PackedConv packed;
    {
      const std::lock_guard lock(kernel.mutex);
      PackedConv& entry = kernel.by_shape[x.sizes().vec()];
      if (!entry) entry = pack_conv(program_.steps[i], kernel.weight, kernel.bias);
      packed = entry;
    }
    return apply(packed);
  }

  static std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

  using AddOp = c10::TypedOperatorHandle<at::Tensor(at::Tensor, at::Tensor, double, int64_t)>;
  static AddOp add_op(const char* name) {
    return c10::Dispatcher::singleton()
        .findSchemaOrThrow(name, "")
        .typed<at::Tensor(at::Tensor, at::Tensor, double, int64_t)>();
  }

  const Program& program_;
  std::vector<std::pair<double, int64_t>> qparams_;  // scale, zero point of each value
  std::vector<std::atomic<bool>> fp32_;              // per step: int8 failed, runs in fp32
  std::vector<std::unique_ptr<ConvKernel>> convs_;   // per step: null unless a convolution
  int64_t failing_step_ = -1;                        // a test's injected failure (-1: none)
  AddOp add_ = add_op("quantized::add");
  AddOp add_relu_ = add_op("quantized::add_relu");
};

// ---- The int8 backbone

class QuantizedBackboneImpl : public BackboneImpl {
 public:
  // The layers of `program`, with empty weights (filled by torch::load or `set_weights`).
  QuantizedBackboneImpl(Program program, nlohmann::json source_architecture, RangeObserver observer,
                        int64_t feature_dim)
      : program_(std::move(program)),
        source_(std::move(source_architecture)),
        observer_(observer),
        feature_dim_(feature_dim) {
    qparams_ = register_buffer("activation_qparams", torch::zeros({program_.values, 2}));
    for (size_t i = 0; i < program_.steps.size(); ++i) {
      const Step& step = program_.steps[i];
      if (step.kind != StepKind::Conv) continue;
      ConvWeights conv;
      conv.step = i;
      conv.weight = register_parameter(fmt::format("conv{}_weight", i),
                                       torch::zeros(step.weight_shape, torch::kChar), false);
      conv.weight_scale = register_buffer(fmt::format("conv{}_weight_scale", i),
                                          torch::ones({step.weight_shape[0]}));
      conv.bias = register_parameter(fmt::format("conv{}_bias", i),
                                     torch::zeros({step.weight_shape[0]}), false);
      convs_.push_back(std::move(conv));
    }
  }

  // Quantizes the fp32 weights of the program's convolutions and sets the activation ranges.
  void set_weights(const Program& fp32, const std::vector<Range>& ranges) {
    torch::NoGradGuard no_grad;
    for (int v = 0; v < program_.values; ++v) {
      const auto [scale, zero_point] =
          ranges[size_t(v)].batches > 0
              ? ranges[size_t(v)].qparams(observer_, activation_of(program_, v))
              : std::pair<double, int64_t>{1.0, 0};
      qparams_[v][0] = scale;
      qparams_[v][1] = static_cast<double>(zero_point);
    }
    for (auto& conv : convs_) {
      const at::Tensor& w = fp32.steps[conv.step].weight;
      const at::Tensor scales =
          (w.abs().amax({1, 2, 3}) / 127.0).clamp_min(1e-12).to(torch::kDouble);
      const at::Tensor q = at::quantize_per_channel(
          w, scales, torch::zeros_like(scales, torch::kLong), 0, torch::kQInt8);
      conv.weight.copy_(q.int_repr());
      conv.weight_scale.copy_(scales.to(torch::kFloat));
      conv.bias.copy_(fp32.steps[conv.step].bias);
    }
  }

  // Packs the weights for oneDNN: once the weights are set or loaded, before `forward`.
  void prepare() {
    torch::NoGradGuard no_grad;
    operations_ = std::make_unique<Int8Operations>(program_, convs_, qparams_);
  }

  torch::Tensor forward(torch::Tensor images) override {
    return run_program(program_, images, prepared());
  }

  std::vector<std::string> steps_routed_around() const { return prepared().routed_around(); }

  // forward as TorchScript source (see define_int8_torchscript). Scales are written with 17
  // significant digits, so they read back as the very doubles forward uses.
  void define_torchscript(torch::jit::Module& module, const std::string& method) {
    const Int8Operations& ops = prepared();
    const std::vector<PackedConv> packed = ops.packed_convs();
    const auto value = [](int v) { return fmt::format("v{}", v); };
    std::string code = fmt::format("def {}(self, images: Tensor) -> Tensor:\n", method);
    // The dtype as its ScalarType number: the C++ TorchScript compiler does not resolve
    // `torch.quint8`.
    code += fmt::format(
        "    v0 = torch.quantize_per_tensor(images.contiguous(), {:.17e}, {}, {})\n",
        ops.qparams(0).first, ops.qparams(0).second, static_cast<int>(c10::ScalarType::QUInt8));
    size_t conv_index = 0;
    for (const Step& step : program_.steps) {
      const auto [scale, zero] = ops.qparams(step.output);
      const std::string x = value(step.inputs[0]);
      std::string expression;
      switch (step.kind) {
        case StepKind::Conv: {
          const std::string weights = fmt::format("int8_conv{}", conv_index);
          const c10::IValue weights_value(packed[conv_index++]);
          module.register_attribute(weights, weights_value.type(), weights_value);
          expression = fmt::format("quantized.{}({}, self.{}, {:.17e}, {})",
                                   step.activation == Activation::None ? "conv2d" : "conv2d_relu",
                                   x, weights, scale, zero);
          break;
        }
        case StepKind::Add:
          expression = fmt::format("quantized.{}({}, {}, {:.17e}, {})",
                                   step.activation == Activation::None ? "add" : "add_relu", x,
                                   value(step.inputs[1]), scale, zero);
          break;
        case StepKind::MaxPool:
          expression =
              fmt::format("torch.max_pool2d({}, {}, {}, {}, {}, {})", x, step.kernel, step.stride,
                          step.padding, step.dilation, step.ceil_mode ? "True" : "False");
          break;
        case StepKind::GlobalPool:
          expression = fmt::format("torch.mean(torch.dequantize({}), [2, 3])", x);
          break;
      }
      code += fmt::format("    {} = {}\n", value(step.output), expression);
    }
    code += fmt::format("    return {}\n", value(program_.output));
    module.define(code, std::make_shared<QuantizedOpsResolver>());
  }

  int64_t feature_dim() const override { return feature_dim_; }

  nlohmann::json architecture() const override {
    return {{"kind", "int8"},
            {"quantized_from", source_},
            {"observer", name_of(observer_)},
            {"feature_dim", feature_dim_},
            {"program", program_.to_json()}};
  }

  // An int8 backbone is not trained further: it has no blocks.
  std::vector<torch::Tensor> block_parameters(const std::string& block) override {
    fail("an int8 backbone cannot be trained (block '{}'); train the fp32 model and quantize it",
         block);
  }

 protected:
  void set_block_training(const std::string&, bool) override {}

 private:
  Int8Operations& prepared() const {
    if (!operations_) fail_internal("an int8 backbone was used before prepare_int8_backbone");
    return *operations_;
  }

  Program program_;
  nlohmann::json source_;
  RangeObserver observer_;
  int64_t feature_dim_;
  at::Tensor qparams_;  // [values, 2]: scale, zero point of each activation
  std::vector<ConvWeights> convs_;
  std::unique_ptr<Int8Operations> operations_;  // made by prepare()
};

}  // namespace

at::Tensor quantize_images(const at::Tensor& images, double scale, int64_t zero_point) {
  const at::Tensor x = images.contiguous().to(torch::kFloat);
  at::Tensor q = at::empty(x.sizes(), x.options().dtype(torch::kByte));
  const float* in = x.data_ptr<float>();
  uint8_t* out = q.data_ptr<uint8_t>();
  const float inverse_scale = 1.0f / static_cast<float>(scale);
  const auto zero = static_cast<float>(zero_point);
  at::parallel_for(0, x.numel(), 1 << 14, [&](int64_t begin, int64_t end) {
    // Adding and subtracting 1.5 * 2^23 rounds a float of magnitude below 2^22 to the nearest
    // integer, halves to even (the FPU's default mode, as std::nearbyint), in two vectorisable
    // instructions; values are first clamped to ±2^21, far outside 0..255 either way.
    constexpr float kRound = 12582912.0f, kLimit = 2097152.0f;
    for (int64_t i = begin; i < end; ++i) {
      const float scaled = std::clamp(in[i] * inverse_scale, -kLimit, kLimit);
      const float rounded = (scaled + kRound) - kRound;
      out[i] = static_cast<uint8_t>(std::clamp(rounded + zero, 0.0f, 255.0f));
    }
  });
  return at::_make_per_tensor_quantized_tensor(q, scale, zero_point);
}

std::string_view name_of(RangeObserver observer) {
  return observer == RangeObserver::MinMax ? "minmax" : "percentile";
}

struct Calibration::Impl {
  Program program;
  nlohmann::json source;
  int64_t feature_dim = 0;
  std::vector<Range> ranges;
};

Calibration::Calibration(const Backbone& backbone, int height, int width)
    : impl_(std::make_unique<Impl>()) {
  impl_->program = trace_program(backbone, height, width);
  impl_->source = backbone->architecture();
  impl_->feature_dim = backbone->feature_dim();
  impl_->ranges.resize(size_t(impl_->program.values));
}

Calibration::~Calibration() = default;
Calibration::Calibration(Calibration&&) noexcept = default;

void Calibration::observe(const at::Tensor& images) {
  torch::InferenceMode guard;
  Fp32Operations ops(impl_->program, &impl_->ranges);
  run_program(impl_->program, images, ops);
}

at::Tensor Calibration::fp32_features(const at::Tensor& images) const {
  torch::InferenceMode guard;
  Fp32Operations ops(impl_->program, nullptr);
  return run_program(impl_->program, images, ops);
}

Backbone Calibration::quantize(RangeObserver observer) const {
  if (impl_->ranges[0].batches == 0) fail_internal("quantize needs observed calibration images");
  auto backbone = std::make_shared<QuantizedBackboneImpl>(impl_->program, impl_->source, observer,
                                                          impl_->feature_dim);
  backbone->set_weights(impl_->program, impl_->ranges);
  backbone->prepare();
  backbone->eval();
  return Backbone(std::shared_ptr<BackboneImpl>(backbone));
}

bool is_quantized(const Backbone& backbone) {
  return dynamic_cast<const QuantizedBackboneImpl*>(backbone.get()) != nullptr;
}

namespace {
QuantizedBackboneImpl& int8_backbone(const Backbone& backbone) {
  const auto int8 = std::dynamic_pointer_cast<QuantizedBackboneImpl>(backbone.ptr());
  if (int8 == nullptr) fail_internal("an int8 backbone was expected");
  return *int8;
}
}  // namespace

void prepare_int8_backbone(const Backbone& backbone) { int8_backbone(backbone).prepare(); }

std::vector<std::string> int8_steps_routed_around(const Backbone& backbone) {
  return int8_backbone(backbone).steps_routed_around();
}

void define_int8_torchscript(const Backbone& backbone, torch::jit::Module& module,
                             const std::string& method) {
  int8_backbone(backbone).define_torchscript(module, method);
}

Backbone quantized_backbone_from_architecture(const nlohmann::json& architecture,
                                              const std::string& source) {
  Program program;
  RangeObserver observer = RangeObserver::MinMax;
  int64_t feature_dim = 0;
  try {
    const nlohmann::json& json = architecture.at("program");
    program.values = json.at("values").get<int>();
    program.output = json.at("output").get<int>();
    for (const auto& step : json.at("steps"))
      program.steps.push_back(Step::from_json(step, source));
    const std::string observer_name = architecture.at("observer").get<std::string>();
    if (observer_name != name_of(RangeObserver::MinMax) &&
        observer_name != name_of(RangeObserver::Percentile))
      fail("{} is a corrupt int8 model (unknown observer '{}'); quantize the model anew", source,
           observer_name.substr(0, 40));
    observer = observer_name == name_of(RangeObserver::MinMax) ? RangeObserver::MinMax
                                                               : RangeObserver::Percentile;
    feature_dim = architecture.at("feature_dim").get<int64_t>();
  } catch (const nlohmann::json::exception& error) {
    fail("{} is a corrupt int8 model ({}); quantize the model anew", source, error.what());
  }
  if (program.output <= 0 || program.output >= program.values)
    fail(
        "{} is a corrupt int8 model (its output value {} is not one of its {} values); quantize "
        "the model anew",
        source, program.output, program.values);
  for (const auto& step : program.steps) {
    bool in_range = step.output > 0 && step.output < program.values;
    for (int input : step.inputs) in_range = in_range && input >= 0 && input < step.output;
    const size_t needed = step.kind == StepKind::Add ? 2 : 1;
    if (!in_range || step.inputs.size() != needed ||
        (step.kind == StepKind::Conv && step.weight_shape.size() != 4))
      fail(
          "{} is a corrupt int8 model (step writing value {} is inconsistent); quantize the "
          "model anew",
          source, step.output);
  }
  auto backbone = std::make_shared<QuantizedBackboneImpl>(
      std::move(program), architecture.value("quantized_from", nlohmann::json()), observer,
      feature_dim);
  return Backbone(std::shared_ptr<BackboneImpl>(backbone));
}

}  // namespace garmentnet
