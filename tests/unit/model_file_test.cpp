// Model files, backbone files and TorchScript backbones exported from torchvision.
#include "model/model_file.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <torch/optim/sgd.h>
#include <torch/types.h>

#include <cstdlib>
#include <fstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/thread_pool.h"
#include "infer/predictor.h"
#include "model/backbone.h"
#include "model/losses.h"
#include "model/quantized_backbone.h"
#include "test_support.h"
#include "train/trainer.h"

namespace garmentnet {
namespace {

using testing::TempDir;

class ModelFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::set_num_threads(default_thread_count());
    torch::manual_seed(11);
  }

  // A small model whose weights and batch-norm statistics are no longer the initial ones.
  static ModelBundle trained_bundle(Backbone backbone) {
    ModelBundle bundle;
    bundle.model =
        MultiTaskModel(std::move(backbone), TaskSpec::garments(), ModelOptions{.dropout = 0.3});
    torch::optim::SGD optimizer(bundle.model->parameters(), torch::optim::SGDOptions(0.05));
    bundle.model->train();
    optimizer.zero_grad();
    multitask_loss(bundle.model->spec(), bundle.model->forward(torch::randn({4, 3, 32, 32})),
                   {{"cc3", torch::tensor({0, 1, 2, 4})},
                    {"tags", torch::tensor({{1, 0, 1}, {0, -1, 0}, {1, 1, 0}, {0, 1, 1}})}})
        .total.backward();
    optimizer.step();
    bundle.model->eval();
    bundle.preprocessing.width = 48;
    bundle.preprocessing.height = 40;
    bundle.preprocessing.resize = ResizeMode::Pad;
    bundle.preprocessing.mean = {0.5f, 0.25f, 0.125f};
    bundle.tag_thresholds["tags"] = {0.3, 0.55, 0.7};
    bundle.metrics = {{"validation", {{"cc3_top2_accuracy", 0.875}}}};
    bundle.metadata = {{"dataset", "unit test"}};
    return bundle;
  }

  static void expect_input_error(const std::function<void()>& action, const std::string& path,
                                 const std::string& words) {
    try {
      action();
      FAIL() << "expected an InputError";
    } catch (const InputError& error) {
      const std::string message = error.what();
      EXPECT_NE(message.find(path), std::string::npos) << message;
      EXPECT_NE(message.find(words), std::string::npos) << message;
    }
  }
};

TEST_F(ModelFileTest, RoundTripGivesIdenticalOutputsAndMetadata) {
  TempDir dir;
  const auto path = dir / "model.gnm";
  ModelBundle saved = trained_bundle(make_native_backbone("small_cnn"));
  save_model_file(saved, path);

  ModelBundle loaded = load_model_file(path);
  EXPECT_FALSE(loaded.model->is_training());
  const torch::Tensor images = torch::randn({2, 3, 32, 32});
  torch::InferenceMode inference;
  const HeadOutputs expected = saved.model->forward(images);
  const HeadOutputs actual = loaded.model->forward(images);
  for (const auto& head : {"cc3", "tags"})
    EXPECT_TRUE(torch::equal(expected.at(head), actual.at(head))) << head;

  EXPECT_EQ(loaded.model->spec().to_json(), saved.model->spec().to_json());
  EXPECT_EQ(loaded.model->options().dropout, 0.3);
  EXPECT_EQ(loaded.preprocessing.to_json(), saved.preprocessing.to_json());
  EXPECT_EQ(loaded.thresholds("tags"), (std::vector<double>{0.3, 0.55, 0.7}));
  EXPECT_EQ(loaded.metrics, saved.metrics);
  EXPECT_EQ(loaded.metadata["dataset"], "unit test");
  EXPECT_TRUE(loaded.metadata.contains("created_at"));
  EXPECT_TRUE(loaded.metadata.contains("garmentnet_version"));

  // The document alone is readable without the weights.
  const nlohmann::json document = read_model_file_document(path);
  EXPECT_EQ(document["architecture"]["backbone"]["architecture"], "small_cnn");
  EXPECT_EQ(document["tag_thresholds"]["tags"]["floral"], 0.55);
  EXPECT_EQ(document["task_spec"]["heads"][0]["classes"][0], "BLOUSES");
}

TEST_F(ModelFileTest, UntunedThresholdsDefaultToOneHalfAndMismatchesAreRejected) {
  TempDir dir;
  ModelBundle bundle;
  bundle.model = MultiTaskModel(make_native_backbone("small_cnn"), TaskSpec::garments());
  EXPECT_EQ(bundle.thresholds("tags"), (std::vector<double>{0.5, 0.5, 0.5}));
  bundle.tag_thresholds["tags"] = {0.5};
  EXPECT_THROW(save_model_file(bundle, dir / "m.gnm"), InputError);
  bundle.tag_thresholds = {{"cc3", {0.5, 0.5, 0.5, 0.5, 0.5}}};
  EXPECT_THROW(save_model_file(bundle, dir / "m.gnm"), InputError);
  EXPECT_FALSE(std::filesystem::exists(dir / "m.gnm"));
}

TEST_F(ModelFileTest, ForeignTruncatedCorruptAndOtherVersionFilesAreInputErrors) {
  TempDir dir;
  const auto good = dir / "model.gnm";
  save_model_file(trained_bundle(make_native_backbone("small_cnn")), good);
  const std::string bytes = read_file(good);

  const auto garbage = dir / "garbage.gnm";
  write_file_atomically(garbage, "this is not a model at all, just some text");
  expect_input_error([&] { load_model_file(garbage); }, garbage.string(),
                     "not a garmentnet model file");
  const auto empty = dir / "empty.gnm";
  write_file_atomically(empty, "");
  expect_input_error([&] { load_model_file(empty); }, empty.string(),
                     "not a garmentnet model file");
  expect_input_error([&] { load_model_file(dir / "missing.gnm"); }, "missing.gnm", "");

  const auto truncated = dir / "truncated.gnm";
  for (size_t keep : {size_t{20}, size_t{100}, bytes.size() / 2, bytes.size() - 1}) {
    write_file_atomically(truncated, std::string_view(bytes).substr(0, keep));
    expect_input_error([&] { load_model_file(truncated); }, truncated.string(), "truncated");
  }
  // A JSON length of 2^64 - 1 (little-endian, after magic and version): the expected size must not
  // wrap around to a small number in the message.
  std::string huge_length = bytes;
  huge_length.replace(20, 8, std::string(8, '\xff'));
  write_file_atomically(truncated, huge_length);
  for (const auto& read : std::vector<std::function<void()>>{
           [&] { load_model_file(truncated); }, [&] { read_model_file_document(truncated); }}) {
    expect_input_error(read, truncated.string(), "more bytes than any file has");
  }

  std::string other_version = bytes;
  other_version[16] =
      static_cast<char>(kEnsembleFormatVersion + 1);  // little-endian uint32 after the magic
  const auto future = dir / "future.gnm";
  write_file_atomically(future, other_version);
  const std::string future_version = fmt::format("format version {}", kEnsembleFormatVersion + 1);
  expect_input_error([&] { load_model_file(future); }, future.string(), future_version);
  expect_input_error([&] { read_model_file_document(future); }, future.string(), future_version);

  std::string flipped = bytes;
  flipped[bytes.size() - 10] ^= 0x5a;
  const auto corrupt = dir / "corrupt.gnm";
  write_file_atomically(corrupt, flipped);
  expect_input_error([&] { load_model_file(corrupt); }, corrupt.string(), "checksum");

  // A backbone file is not a model file, and the other way round.
  const auto backbone = dir / "backbone.pt";
  save_backbone_file(make_native_backbone("small_cnn"), backbone);
  expect_input_error([&] { load_model_file(backbone); }, backbone.string(),
                     "not a garmentnet model file");
  expect_input_error([&] { load_backbone_file(good); }, good.string(),
                     "not a garmentnet backbone file");
}

// An ensemble file holds its models whole; Predictor answers their mean, at their mean thresholds,
// and the commands that take one model refuse it by name. Plain files keep the format version
// older builds read.
TEST_F(ModelFileTest, AnEnsembleFileAveragesItsModelsAndSingleModelCommandsRefuseIt) {
  TempDir dir;
  ModelBundle first = trained_bundle(make_native_backbone("small_cnn"));
  ModelBundle second = trained_bundle(make_native_backbone("small_cnn"));
  second.tag_thresholds["tags"] = {0.5, 0.35, 0.9};
  save_model_file(first, dir / "first.gnm");
  save_model_file(second, dir / "second.gnm");
  const auto ensemble = dir / "ensemble.gnm";
  save_ensemble_file({first, second}, {{"dataset", "unit test"}}, ensemble);
  EXPECT_EQ(read_file(dir / "first.gnm")[16], char(kModelFormatVersion));
  EXPECT_EQ(read_file(ensemble)[16], char(kEnsembleFormatVersion));

  std::vector<ModelBundle> members = load_model_members(ensemble);
  ASSERT_EQ(members.size(), 2u);
  const torch::Tensor images = torch::randn({2, 3, 40, 48});
  {
    torch::InferenceMode inference;
    EXPECT_TRUE(torch::equal(members[1].model->forward(images).at("cc3"),
                             second.model->forward(images).at("cc3")));
  }
  EXPECT_EQ(members[1].thresholds("tags"), second.thresholds("tags"));
  expect_input_error([&] { load_model_file(ensemble); }, ensemble.string(), "ensemble of 2 models");

  std::vector<cv::Mat> resized;
  for (int i = 0; i < 3; ++i) {
    cv::Mat image(40, 48, CV_8UC3);
    cv::randu(image, cv::Scalar::all(0), cv::Scalar::all(255));
    resized.push_back(image);
  }
  const PredictorOptions eager{.optimize = false};
  const HeadProbabilities mean = Predictor(ensemble, eager).predict(resized);
  const HeadProbabilities one = Predictor(dir / "first.gnm", eager).predict(resized);
  const HeadProbabilities other = Predictor(dir / "second.gnm", eager).predict(resized);
  for (const char* head : {"cc3", "tags"}) {
    ASSERT_EQ(mean.at(head).size(), one.at(head).size());
    for (size_t i = 0; i < one.at(head).size(); ++i)
      EXPECT_NEAR(mean.at(head)[i], (one.at(head)[i] + other.at(head)[i]) / 2, 1e-6) << head;
  }
  const std::vector<double> thresholds = Predictor(ensemble, eager).thresholds("tags");
  const std::vector<double> expected{0.4, 0.45, 0.8};
  for (size_t t = 0; t < 3; ++t) EXPECT_NEAR(thresholds[t], expected[t], 1e-12);

  second.preprocessing.width = 64;
  expect_input_error(
      [&] {
        save_ensemble_file({first, second}, {}, dir / "mixed.gnm");
      },
      "mixed.gnm", "model 2 differs");
  EXPECT_FALSE(std::filesystem::exists(dir / "mixed.gnm"));
}

// Header (28 bytes) + document checksum (4 bytes) + the JSON document of a version 2 file.
size_t document_end(const std::string& bytes) {
  uint64_t json_bytes = 0;
  for (int i = 7; i >= 0; --i)
    json_bytes = (json_bytes << 8) | static_cast<unsigned char>(bytes[20 + static_cast<size_t>(i)]);
  return 32 + json_bytes;
}

TEST_F(ModelFileTest, AFlippedByteAnywhereInTheFileIsACorruptionError) {
  TempDir dir;
  const auto good = dir / "model.gnm";
  save_model_file(trained_bundle(make_native_backbone("small_cnn")), good);
  const std::string bytes = read_file(good);
  const size_t sections_begin = document_end(bytes);

  // Edits a user would never notice otherwise: a threshold, a mean, the input width, a class name.
  const auto corrupt = dir / "corrupt.gnm";
  for (const auto& [from, to] :
       std::vector<std::pair<std::string, std::string>>{{"0.55", "0.95"},
                                                        {"0.125", "0.725"},
                                                        {"\"width\": 48", "\"width\": 88"},
                                                        {"BLOUSES", "BLOUSEZ"}}) {
    std::string edited = bytes;
    const size_t at = edited.find(from);
    ASSERT_LT(at, sections_begin) << from;
    edited.replace(at, from.size(), to);
    write_file_atomically(corrupt, edited);
    expect_input_error([&] { load_model_file(corrupt); }, corrupt.string(), "checksum");
    expect_input_error([&] { read_model_file_document(corrupt); }, corrupt.string(), "checksum");
  }
  // Every single byte of the header and the document (the sections are not needed to read it).
  const std::string head = bytes.substr(0, sections_begin);
  for (size_t i = 0; i < head.size(); ++i) {
    std::string flipped = head;
    flipped[i] ^= 0x04;
    {
      std::ofstream out(corrupt, std::ios::binary | std::ios::trunc);
      out << flipped;
    }
    EXPECT_THROW(read_model_file_document(corrupt), InputError) << "byte " << i;
  }
  // And the weights section, first and last byte.
  for (size_t i : {sections_begin, bytes.size() - 1}) {
    std::string flipped = bytes;
    flipped[i] ^= 0x04;
    write_file_atomically(corrupt, flipped);
    expect_input_error([&] { load_model_file(corrupt); }, corrupt.string(),
                       "section 'weights' fails its checksum");
  }
}

TEST_F(ModelFileTest, FormatVersion1FilesWithoutADocumentChecksumStillLoad) {
  TempDir dir;
  const auto current = dir / "model.gnm";
  ModelBundle saved = trained_bundle(make_native_backbone("small_cnn"));
  save_model_file(saved, current);
  // Version 1 is version 2 without the document checksum after the 28-byte header.
  std::string bytes = read_file(current);
  bytes[16] = 1;
  bytes.erase(28, 4);
  const auto old = dir / "old.gnm";
  write_file_atomically(old, bytes);

  ModelBundle loaded = load_model_file(old);
  EXPECT_EQ(loaded.thresholds("tags"), (std::vector<double>{0.3, 0.55, 0.7}));
  EXPECT_EQ(loaded.preprocessing.to_json(), saved.preprocessing.to_json());
  EXPECT_EQ(read_model_file_document(old)["task_spec"], saved.model->spec().to_json());
  const torch::Tensor images = torch::randn({2, 3, 32, 32});
  torch::InferenceMode inference;
  EXPECT_TRUE(torch::equal(saved.model->forward(images).at("cc3"),
                           loaded.model->forward(images).at("cc3")));
  // Its sections are still checked.
  bytes[bytes.size() - 1] ^= 0x04;
  write_file_atomically(old, bytes);
  expect_input_error([&] { load_model_file(old); }, old.string(), "checksum");
}

TEST_F(ModelFileTest, BackboneFileRoundTripKeepsWeightsAndMetadata) {
  TempDir dir;
  const auto path = dir / "backbone.pt";
  ModelBundle bundle = trained_bundle(make_native_backbone("small_cnn"));
  Backbone saved = bundle.model->backbone();
  save_backbone_file(saved, path, {{"pretrained_on", "fashion-mnist source split"}});

  nlohmann::json metadata;
  Backbone loaded = load_backbone_file(path, &metadata);
  EXPECT_EQ(metadata["pretrained_on"], "fashion-mnist source split");
  Backbone opened = open_backbone(path.string());  // what `train --backbone FILE` does
  loaded->eval();
  opened->eval();
  const torch::Tensor images = torch::randn({2, 3, 32, 32});
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(saved->forward(images), loaded->forward(images)));
  EXPECT_TRUE(torch::equal(saved->forward(images), opened->forward(images)));
}

// ---- TorchScript backbones exported with tools/export_torchvision_backbone.py

class TorchScriptBackboneTest : public ModelFileTest {
 protected:
  static void SetUpTestSuite() {
    if (std::system("/usr/bin/python3 -c 'import torchvision' >/dev/null 2>&1") != 0) return;
    dir_ = new TempDir();
    const std::string command =
        std::string("/usr/bin/python3 ") + GARMENTNET_SOURCE_DIR +
        "/tools/export_torchvision_backbone.py --arch resnet18 --random --out '" +
        (dir_->path() / "resnet18.pt").string() + "' --save-example '" +
        (dir_->path() / "example").string() + "' --example-size 32 >/dev/null";
    exported_ = std::system(command.c_str()) == 0;
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override {
    ModelFileTest::SetUp();
    if (dir_ == nullptr) GTEST_SKIP() << "/usr/bin/python3 cannot import torchvision";
    ASSERT_TRUE(exported_) << "tools/export_torchvision_backbone.py failed";
  }

  static torch::Tensor read_floats(const std::filesystem::path& path, std::vector<int64_t> shape) {
    std::string bytes = read_file(path);
    return torch::from_blob(bytes.data(), shape, torch::kFloat32).clone();
  }

  static std::filesystem::path script_path() { return dir_->path() / "resnet18.pt"; }
  static std::filesystem::path example(const std::string& name) {
    return dir_->path() / "example" / name;
  }

  static inline TempDir* dir_ = nullptr;
  static inline bool exported_ = false;
};

TEST_F(TorchScriptBackboneTest, ImportedBackboneMatchesPython) {
  Backbone backbone = open_backbone("torchscript:" + script_path().string());
  EXPECT_EQ(backbone->feature_dim(), 512);
  EXPECT_EQ(backbone->block_names(),
            (std::vector<std::string>{"conv1", "bn1", "layer1", "layer2", "layer3", "layer4"}));
  ASSERT_TRUE(backbone->expected_preprocessing().has_value());
  EXPECT_EQ(backbone->expected_preprocessing()->width, 224);
  EXPECT_EQ(backbone->architecture()["metadata"]["architecture"], "resnet18");

  const nlohmann::json shapes = nlohmann::json::parse(read_file(example("example.json")));
  const torch::Tensor input =
      read_floats(example("input.f32"), shapes["input_shape"].get<std::vector<int64_t>>());
  const torch::Tensor expected =
      read_floats(example("output.f32"), shapes["output_shape"].get<std::vector<int64_t>>());
  backbone->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor actual = backbone->forward(input);
  EXPECT_TRUE(torch::allclose(actual, expected, 1e-4, 1e-5)) << (actual - expected).abs().max();
  // Also readable as a plain file name (no torchscript: prefix).
  Backbone plain = open_backbone(script_path().string());
  plain->eval();
  EXPECT_TRUE(torch::equal(plain->forward(input), actual));
}

TEST_F(TorchScriptBackboneTest, FreezingAndModelFileRoundTrip) {
  TempDir dir;
  const auto copy = dir / "copy.pt";
  std::filesystem::copy_file(script_path(), copy);
  ModelBundle saved = trained_bundle(load_torchscript_backbone(copy));
  Backbone backbone = saved.model->backbone();

  // Freezing works on TorchScript blocks too: the stem stays, the last layer trains.
  saved.model->unfreeze_last_blocks(1);
  const auto stem_before = backbone->block_parameters("conv1")[0].detach().clone();
  const auto last_before = backbone->block_parameters("layer4")[0].detach().clone();
  torch::optim::SGD optimizer(saved.model->parameters(), torch::optim::SGDOptions(0.05));
  saved.model->train();
  optimizer.zero_grad();
  multitask_loss(saved.model->spec(), saved.model->forward(torch::randn({2, 3, 32, 32})),
                 {{"cc3", torch::tensor({0, 1})}, {"tags", torch::tensor({{1, 0, 1}, {0, 1, 0}})}})
      .total.backward();
  optimizer.step();
  EXPECT_TRUE(torch::equal(stem_before, backbone->block_parameters("conv1")[0]));
  EXPECT_FALSE(torch::equal(last_before, backbone->block_parameters("layer4")[0]));
  saved.model->eval();

  // The model file embeds the TorchScript module with its trained weights.
  const auto path = dir / "model.gnm";
  save_model_file(saved, path);
  std::filesystem::remove(copy);  // the model file needs nothing beside it
  ModelBundle loaded = load_model_file(path);
  const torch::Tensor images = torch::randn({2, 3, 32, 32});
  torch::InferenceMode inference;
  const HeadOutputs expected = saved.model->forward(images);
  const HeadOutputs actual = loaded.model->forward(images);
  for (const auto& head : {"cc3", "tags"})
    EXPECT_TRUE(torch::equal(expected.at(head), actual.at(head))) << head;
}

TEST_F(TorchScriptBackboneTest, Int8QuantizationRefusesItClearly) {
  Backbone backbone = open_backbone("torchscript:" + script_path().string());
  backbone->eval();
  const std::string message = testing::error_of([&] { Calibration calibration(backbone, 32, 32); });
  EXPECT_NE(message.find("imported from TorchScript"), std::string::npos) << message;
  EXPECT_NE(message.find("small_cnn"), std::string::npos) << message;
}

int64_t element_count(const std::vector<torch::Tensor>& tensors) {
  int64_t count = 0;
  for (const auto& tensor : tensors) count += tensor.numel();
  return count;
}

TEST_F(TorchScriptBackboneTest, HasTheNativeParametersAndTrainsFineTunesAndResumes) {
  // Every weight of the TorchScript module is a parameter of the backbone, as many as the native
  // resnet18 has, and batch-norm statistics are buffers.
  Backbone imported = open_backbone("torchscript:" + script_path().string());
  Backbone native = make_native_backbone("resnet18");
  EXPECT_EQ(element_count(imported->parameters()), element_count(native->parameters()));
  EXPECT_EQ(imported->parameters().size(), native->parameters().size());
  EXPECT_EQ(element_count(imported->parameters()), 11'176'512);
  EXPECT_EQ(element_count(imported->buffers()), element_count(native->buffers()));

  // Fine-tuning the last block through `train` changes that block's weights and no other's.
  TempDir dir;
  TrainOptions options = testing::quick_train_options(dir / "run", 1);
  options.backbone = "torchscript:" + script_path().string();
  options.transfer = TransferMode::Finetune;
  options.unfreeze_blocks = 1;
  options.image_size = 16;
  options.batch_size = 128;
  train_model(options, testing::training_resources());
  auto backbone_of = [](const std::filesystem::path& model) {
    return load_model_file(model).model->backbone();
  };
  Backbone after_one = backbone_of(dir / "run/checkpoint.gnm");
  EXPECT_TRUE(torch::equal(after_one->block_parameters("conv1")[0],
                           imported->block_parameters("conv1")[0]));
  EXPECT_TRUE(torch::equal(after_one->block_parameters("layer3")[0],
                           imported->block_parameters("layer3")[0]));
  EXPECT_FALSE(torch::equal(after_one->block_parameters("layer4")[0],
                            imported->block_parameters("layer4")[0]));
  EXPECT_EQ(element_count(after_one->parameters()), element_count(imported->parameters()));

  // Resuming continues from the embedded module's weights with the saved optimizer state.
  options.resume = true;
  options.epochs = 2;
  train_model(options, testing::training_resources());
  const std::string log = read_file(dir / "run/train.log");
  EXPECT_NE(log.find("resuming at epoch 2 of 2"), std::string::npos) << log;
  EXPECT_EQ(log.find("fresh optimizer state"), std::string::npos) << log;
  Backbone after_two = backbone_of(dir / "run/checkpoint.gnm");
  EXPECT_FALSE(torch::equal(after_two->block_parameters("layer4")[0],
                            after_one->block_parameters("layer4")[0]));
  EXPECT_TRUE(torch::equal(after_two->block_parameters("conv1")[0],
                           imported->block_parameters("conv1")[0]));
  EXPECT_EQ(nlohmann::json::parse(read_file(dir / "run/metrics.json")).size(), 2u);
}

}  // namespace
}  // namespace garmentnet
