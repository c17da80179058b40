// Backbones, the multi-task model, freezing and the losses.
#include <gtest/gtest.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/optim/sgd.h>
#include <torch/types.h>

#include <cmath>
#include <set>

#include "core/error.h"
#include "core/thread_pool.h"
#include "model/backbone.h"
#include "model/losses.h"
#include "model/multitask_model.h"

namespace garmentnet {
namespace {

class ModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::set_num_threads(default_thread_count());
    torch::manual_seed(7);
  }
};

int64_t parameter_count(torch::nn::Module& module) {
  int64_t count = 0;
  for (const auto& parameter : module.parameters()) count += parameter.numel();
  return count;
}

std::vector<torch::Tensor> clones(const std::vector<torch::Tensor>& tensors) {
  std::vector<torch::Tensor> result;
  for (const auto& tensor : tensors) result.push_back(tensor.detach().clone());
  return result;
}

bool all_equal(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  for (size_t i = 0; i < a.size(); ++i)
    if (!torch::equal(a[i], b[i])) return false;
  return true;
}

bool none_equal(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  for (size_t i = 0; i < a.size(); ++i)
    if (torch::equal(a[i], b[i])) return false;
  return true;
}

// One SGD step on the garment losses for a random batch.
void train_step(MultiTaskModel& model, torch::optim::Optimizer& optimizer) {
  model->train();
  const torch::Tensor images = torch::randn({4, 3, 32, 32});
  const HeadTargets targets{{"cc3", torch::tensor({0, 1, 2, 3})},
                            {"tags", torch::tensor({{1, 0, 1}, {0, 0, 0}, {1, 1, 0}, {0, 1, 1}})}};
  optimizer.zero_grad();
  multitask_loss(model->spec(), model->forward(images), targets).total.backward();
  optimizer.step();
}

TEST_F(ModelTest, SmallCnnGivesPooledFeaturesAndNamesItsBlocks) {
  Backbone backbone = make_native_backbone("small_cnn");
  const torch::Tensor features = backbone->forward(torch::randn({2, 3, 32, 32}));
  EXPECT_EQ(features.sizes(), (std::vector<int64_t>{2, 256}));
  EXPECT_EQ(backbone->feature_dim(), 256);
  EXPECT_EQ(backbone->block_names(),
            (std::vector<std::string>{"block1", "block2", "block3", "block4"}));
  EXPECT_EQ(backbone->architecture()["architecture"], "small_cnn");
  // The same network works at the default 64 px input too.
  EXPECT_EQ(backbone->forward(torch::randn({1, 3, 64, 64})).sizes(),
            (std::vector<int64_t>{1, 256}));
}

TEST_F(ModelTest, NativeArchitecturesMatchTorchvisionParameterCountsAndShapes) {
  // Parameter counts of torchvision's feature extractors (classifier removed).
  const std::vector<std::tuple<std::string, int64_t, int64_t>> expected{
      {"resnet18", 11'176'512, 512},
      {"resnet50", 23'508'032, 2048},
      {"mobilenet_v2", 2'223'872, 1280},
      {"vgg16", 14'714'688, 512}};
  torch::NoGradGuard no_grad;
  for (const auto& [name, parameters, dim] : expected) {
    SCOPED_TRACE(name);
    Backbone backbone = make_native_backbone(name);
    EXPECT_EQ(parameter_count(*backbone), parameters);
    backbone->eval();
    EXPECT_EQ(backbone->forward(torch::randn({1, 3, 32, 32})).sizes(),
              (std::vector<int64_t>{1, dim}));
    EXPECT_EQ(backbone->feature_dim(), dim);
    // Every parameter belongs to exactly one block, so freezing blocks covers the whole backbone.
    std::set<void*> seen;
    size_t in_blocks = 0;
    for (const auto& block : backbone->block_names())
      for (const auto& parameter : backbone->block_parameters(block)) {
        seen.insert(parameter.unsafeGetTensorImpl());
        ++in_blocks;
      }
    EXPECT_EQ(in_blocks, backbone->parameters().size());
    EXPECT_EQ(seen.size(), backbone->parameters().size());
  }
}

TEST_F(ModelTest, TorchvisionNamesAreKept) {
  Backbone resnet = make_native_backbone("resnet18");
  const auto names = resnet->named_parameters().keys();
  for (const char* key : {"conv1.weight", "bn1.weight", "layer1.0.conv1.weight",
                          "layer2.0.downsample.0.weight", "layer4.1.bn2.bias"})
    EXPECT_NE(std::find(names.begin(), names.end(), key), names.end()) << key;
  EXPECT_EQ(resnet->block_names(),
            (std::vector<std::string>{"stem", "layer1", "layer2", "layer3", "layer4"}));
  Backbone mobilenet = make_native_backbone("mobilenet_v2");
  const auto mobile_names = mobilenet->named_parameters().keys();
  for (const char* key : {"features.0.0.weight", "features.1.conv.0.0.weight",
                          "features.2.conv.3.weight", "features.18.1.bias"})
    EXPECT_NE(std::find(mobile_names.begin(), mobile_names.end(), key), mobile_names.end()) << key;
  EXPECT_EQ(mobilenet->block_names().size(), 19u);
}

TEST_F(ModelTest, UnknownBackboneNamesTheChoices) {
  try {
    make_native_backbone("resnet101");
    FAIL() << "expected an InputError";
  } catch (const InputError& error) {
    EXPECT_NE(std::string(error.what()).find("small_cnn"), std::string::npos) << error.what();
  }
  EXPECT_THROW(open_backbone("no-such-backbone-file.pt"), InputError);
}

TEST_F(ModelTest, ModelOutputsOneLogitTensorPerHead) {
  MultiTaskModel model(make_native_backbone("small_cnn"), TaskSpec::garments());
  model->eval();
  const torch::Tensor images = torch::randn({2, 3, 32, 32});
  const HeadOutputs outputs = model->forward(images);
  ASSERT_EQ(outputs.size(), 2u);
  EXPECT_EQ(outputs.at("cc3").sizes(), (std::vector<int64_t>{2, 5}));
  EXPECT_EQ(outputs.at("tags").sizes(), (std::vector<int64_t>{2, 3}));
  // features + heads_forward is the same computation (what a feature cache relies on).
  const HeadOutputs split = model->heads_forward(model->features(images));
  EXPECT_TRUE(torch::equal(split.at("cc3"), outputs.at("cc3")));
  const HeadOutputs probabilities = head_probabilities(model->spec(), outputs);
  EXPECT_TRUE(torch::allclose(probabilities.at("cc3").sum(1), torch::ones({2})));
  EXPECT_TRUE((probabilities.at("tags") > 0).all().item<bool>());
  EXPECT_EQ(model->architecture()["heads"][1]["outputs"], 3);
}

TEST_F(ModelTest, BadTaskSpecsAreRejected) {
  TaskSpec spec = TaskSpec::garments();
  spec.heads[0].name = "cc.3";
  EXPECT_THROW(MultiTaskModel(make_native_backbone("small_cnn"), spec), InputError);
  spec.heads.clear();
  EXPECT_THROW(MultiTaskModel(make_native_backbone("small_cnn"), spec), InputError);
}

TEST_F(ModelTest, FrozenBackboneKeepsWeightsAndStatisticsWhileHeadsLearn) {
  MultiTaskModel model(make_native_backbone("small_cnn"), TaskSpec::garments());
  model->freeze_backbone();
  const ParameterGroups groups = model->parameter_groups();
  EXPECT_TRUE(groups.backbone.empty());
  EXPECT_EQ(groups.heads.size(), 4u);  // weight and bias of two heads
  const auto backbone_before = clones(model->backbone()->parameters());
  const auto buffers_before = clones(model->backbone()->buffers());
  const auto heads_before = clones(groups.heads);
  torch::optim::SGD optimizer(model->parameters(), torch::optim::SGDOptions(0.1));
  train_step(model, optimizer);
  EXPECT_TRUE(all_equal(backbone_before, model->backbone()->parameters()));
  EXPECT_TRUE(all_equal(buffers_before, model->backbone()->buffers()));  // batch-norm statistics
  EXPECT_TRUE(none_equal(heads_before, groups.heads));
  EXPECT_TRUE(model->is_training());
}

TEST_F(ModelTest, UnfreezingTheLastBlockTrainsOnlyThatBlock) {
  MultiTaskModel model(make_native_backbone("small_cnn"), TaskSpec::garments());
  model->unfreeze_last_blocks(1);
  Backbone backbone = model->backbone();
  EXPECT_TRUE(backbone->is_frozen("block3"));
  EXPECT_FALSE(backbone->is_frozen("block4"));
  const ParameterGroups groups = model->parameter_groups();
  EXPECT_EQ(groups.backbone.size(), backbone->block_parameters("block4").size());
  const auto early_before = clones(backbone->block_parameters("block1"));
  const auto last_before = clones(backbone->block_parameters("block4"));
  torch::optim::SGD optimizer(model->parameters(), torch::optim::SGDOptions(0.1));
  train_step(model, optimizer);
  EXPECT_TRUE(all_equal(early_before, backbone->block_parameters("block1")));
  EXPECT_TRUE(none_equal(last_before, backbone->block_parameters("block4")));

  model->unfreeze_backbone();
  EXPECT_EQ(model->parameter_groups().backbone.size(), backbone->parameters().size());
  EXPECT_THROW(backbone->block_parameters("block9"), InputError);
}

// ---- losses

TaskSpec one_head_spec(HeadKind kind, size_t outputs) {
  HeadSpec head{.name = "h", .kind = kind, .column = "c", .classes = {}};
  for (size_t i = 0; i < outputs; ++i) head.classes.push_back("c" + std::to_string(i));
  return TaskSpec{.heads = {head}};
}

double log_softmax_at(const std::vector<double>& logits, size_t index) {
  double sum = 0;
  for (double logit : logits) sum += std::exp(logit);
  return logits[index] - std::log(sum);
}

double bce(double logit, double target, double pos_weight = 1) {
  const double p = 1 / (1 + std::exp(-logit));
  return -(pos_weight * target * std::log(p) + (1 - target) * std::log(1 - p));
}

TEST_F(ModelTest, SoftmaxLossIgnoresMissingLabels) {
  const TaskSpec spec = one_head_spec(HeadKind::Softmax, 3);
  const HeadOutputs logits{
      {"h", torch::tensor({{1.0, 2.0, 0.5}, {9.0, -3.0, 4.0}, {0.2, 0.1, 0.3}})}};
  const LossResult result = multitask_loss(spec, logits, {{"h", torch::tensor({1, -1, 0})}});
  const double expected =
      -(log_softmax_at({1.0, 2.0, 0.5}, 1) + log_softmax_at({0.2, 0.1, 0.3}, 0)) / 2;
  EXPECT_NEAR(result.total.item<double>(), expected, 1e-6);
  EXPECT_NEAR(result.per_head.at("h"), expected, 1e-6);
  EXPECT_EQ(result.labelled.at("h"), 2);
}

TEST_F(ModelTest, LabelSmoothingAndClassWeightsChangeTheLossAsDefined) {
  const TaskSpec spec = one_head_spec(HeadKind::Softmax, 3);
  const std::vector<std::vector<double>> rows{{1.0, 2.0, 0.5}, {0.2, 0.1, 0.3}};
  const HeadOutputs logits{{"h", torch::tensor({{1.0, 2.0, 0.5}, {0.2, 0.1, 0.3}})}};
  const HeadTargets targets{{"h", torch::tensor({1, 0})}};
  const double epsilon = 0.2;
  double smoothed = 0;
  for (size_t r = 0; r < rows.size(); ++r) {
    const size_t target = r == 0 ? 1 : 0;
    double uniform = 0;
    for (size_t c = 0; c < 3; ++c) uniform -= log_softmax_at(rows[r], c) / 3;
    smoothed += ((1 - epsilon) * -log_softmax_at(rows[r], target) + epsilon * uniform) / 2;
  }
  HeadLossOptions smoothing_options;
  smoothing_options.label_smoothing = epsilon;
  const LossOptions smoothing{{"h", smoothing_options}};
  EXPECT_NEAR(multitask_loss(spec, logits, targets, smoothing).total.item<double>(), smoothed,
              1e-6);

  // Class weights: weighted mean over the labelled rows, Σ w_y·l / Σ w_y.
  HeadLossOptions weight_options;
  weight_options.class_weights = torch::tensor({3.0, 1.0, 1.0});
  const LossOptions weighted{{"h", weight_options}};
  const double expected = (1 * -log_softmax_at(rows[0], 1) + 3 * -log_softmax_at(rows[1], 0)) / 4;
  EXPECT_NEAR(multitask_loss(spec, logits, targets, weighted).total.item<double>(), expected, 1e-6);
}

TEST_F(ModelTest, MultiLabelLossMasksMissingTagsAndAppliesPosWeight) {
  const TaskSpec spec = one_head_spec(HeadKind::MultiLabel, 2);
  const HeadOutputs logits{{"h", torch::tensor({{0.5, -1.0}, {2.0, 0.3}})}};
  const HeadTargets targets{{"h", torch::tensor({{1, -1}, {0, 1}})}};
  const LossResult plain = multitask_loss(spec, logits, targets);
  EXPECT_NEAR(plain.total.item<double>(), (bce(0.5, 1) + bce(2.0, 0) + bce(0.3, 1)) / 3, 1e-6);
  EXPECT_EQ(plain.labelled.at("h"), 3);

  HeadLossOptions pos_options;
  pos_options.pos_weight = torch::tensor({4.0, 2.0});
  const LossOptions options{{"h", pos_options}};
  const LossResult weighted = multitask_loss(spec, logits, targets, options);
  EXPECT_NEAR(weighted.total.item<double>(), (bce(0.5, 1, 4) + bce(2.0, 0, 2) + bce(0.3, 1, 2)) / 3,
              1e-6);
}

TEST_F(ModelTest, TotalLossIsTheWeightedSumAndEmptyHeadsCountZero) {
  TaskSpec spec = TaskSpec::garments();
  spec.heads[1].loss_weight = 0.5;
  const torch::Tensor cc3 = torch::tensor({{1.0, 2.0, 0.5, 0.0, 0.0}}).requires_grad_();
  const torch::Tensor tags = torch::tensor({{0.5, -1.0, 2.0}}).requires_grad_();
  const HeadOutputs logits{{"cc3", cc3}, {"tags", tags}};
  const LossResult both = multitask_loss(
      spec, logits, {{"cc3", torch::tensor({2})}, {"tags", torch::tensor({{1, 0, 1}})}});
  EXPECT_NEAR(both.total.item<double>(), both.per_head.at("cc3") + 0.5 * both.per_head.at("tags"),
              1e-6);

  // A batch where the category is missing everywhere: only the tags count, backward still works.
  const LossResult tags_only = multitask_loss(
      spec, logits, {{"cc3", torch::tensor({-1})}, {"tags", torch::tensor({{1, 0, 1}})}});
  EXPECT_EQ(tags_only.per_head.at("cc3"), 0.0);
  EXPECT_EQ(tags_only.labelled.at("cc3"), 0);
  EXPECT_NEAR(tags_only.total.item<double>(), 0.5 * both.per_head.at("tags"), 1e-6);
  tags_only.total.backward();
  EXPECT_TRUE(torch::equal(cc3.grad(), torch::zeros_like(cc3)));
  EXPECT_FALSE(torch::equal(tags.grad(), torch::zeros_like(tags)));
}

TEST_F(ModelTest, LossRejectsBadTargets) {
  const TaskSpec spec = one_head_spec(HeadKind::Softmax, 3);
  const HeadOutputs logits{{"h", torch::zeros({2, 3})}};
  EXPECT_THROW(multitask_loss(spec, logits, {{"h", torch::tensor({0, 3})}}), InputError);
  EXPECT_THROW(multitask_loss(spec, logits, {{"h", torch::tensor({0, 1, 2})}}), InputError);
  EXPECT_THROW(multitask_loss(spec, logits, {}), InputError);
}

}  // namespace
}  // namespace garmentnet
