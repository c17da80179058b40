// The deployment recipes of docs/scale-out.md (deploy/*.yaml) cannot run here (no Kubernetes), so
// they are run as their controllers would start them: the manifests' own argument lists, with the
// environment the controller sets and this machine's paths in place of the volumes.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <regex>

#include "core/atomic_file.h"
#include "model/backbone.h"
#include "predict_fixture.h"

namespace garmentnet::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Every `args: [...]` list of a manifest (written as one-line flow sequences, which are JSON).
std::vector<std::vector<std::string>> manifest_arguments(const std::string& name) {
  const std::string text = read_file(fs::path(GARMENTNET_SOURCE_DIR) / "deploy" / name);
  static const std::regex args(R"(args: (\[.*\]))");
  std::vector<std::vector<std::string>> lists;
  for (std::sregex_iterator it(text.begin(), text.end(), args), end; it != end; ++it)
    lists.push_back(json::parse((*it)[1].str()).get<std::vector<std::string>>());
  return lists;
}

// The arguments as one shell command line, with the manifest's paths mapped to local ones.
std::string command_line(std::vector<std::string> arguments,
                         const std::vector<std::pair<std::string, std::string>>& replacements) {
  std::string line = GARMENTNET_BINARY;
  for (std::string& argument : arguments) {
    for (const auto& [from, to] : replacements)
      if (argument.starts_with(from)) argument = to + argument.substr(from.size());
    line += " " + shell_quote(argument);
  }
  return line;
}

TEST(DeployRecipes, PyTorchJobTrainsAsTheOperatorStartsIt) {
  const auto lists = manifest_arguments("pytorchjob-train.yaml");
  ASSERT_EQ(lists.size(), 2u);
  EXPECT_EQ(lists[0], lists[1]) << "Master and Worker must run the same command";
  TempDir dir;
  fs::create_directories(dir / "runs" / "pre");
  save_backbone_file(make_native_backbone("small_cnn"), dir / "runs" / "pre" / "backbone.pt", {});
  std::vector<std::string> arguments = lists[0];
  for (size_t i = 0; i + 1 < arguments.size(); ++i)
    if (arguments[i] == "--threads") arguments[i + 1] = "1";
  const std::string command = command_line(arguments, {{"/data/garments", tiny_dataset().string()},
                                                       {"/runs", (dir / "runs").string()}}) +
                              " --epochs 1 --image-size 32";
  // What the operator sets (MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK, no LOCAL_RANK), and the
  // manifest's GLOO_SOCKET_IFNAME with this machine's loopback interface.
  const std::string environment =
      "MASTER_ADDR=127.0.0.1 MASTER_PORT=29741 WORLD_SIZE=2 GLOO_SOCKET_IFNAME=lo ";
  const auto run =
      run_shell("(" + environment + "RANK=1 " + command + " > " + shell_quote(dir / "worker.log") +
                " 2>&1 &); " + environment + "RANK=0 " + command);
  EXPECT_EQ(run.exit_code, 0) << run.output << read_file(dir / "worker.log");
  EXPECT_TRUE(fs::exists(dir / "runs" / "r1" / "model.gnm")) << run.output;
  EXPECT_NE(run.output.find("rank 0 of 2 joined"), std::string::npos) << run.output;
}

TEST(DeployRecipes, IndexedJobShardsMergeIntoTheUnshardedPredictions) {
  const auto lists = manifest_arguments("indexed-job-predict.yaml");
  ASSERT_EQ(lists.size(), 1u);
  const auto& fx = predict_fixture();
  TempDir dir;
  const std::vector<std::pair<std::string, std::string>> paths{
      {"/models/garments/1/model-int8.gnm", fx.model.string()},
      {"/data/items.parquet", (fx.data / "test.parquet").string()},
      {"/data/images", fx.images.string()},
      {"/out", (dir / "out").string()}};
  fs::create_directories(dir / "out");
  const std::string manifest =
      read_file(fs::path(GARMENTNET_SOURCE_DIR) / "deploy" / "indexed-job-predict.yaml");
  const std::smatch completions = [&] {
    std::smatch match;
    std::regex_search(manifest, match, std::regex(R"(completions: (\d+))"));
    return match;
  }();
  ASSERT_FALSE(completions.empty());
  const int pods = std::stoi(completions[1].str());
  for (int index = 0; index < pods; ++index) {
    std::vector<std::string> arguments = lists[0];
    for (auto& argument : arguments)
      argument = std::regex_replace(argument, std::regex(R"(\$\(JOB_COMPLETION_INDEX\))"),
                                    std::to_string(index));
    const auto run = run_shell(command_line(arguments, paths));
    ASSERT_EQ(run.exit_code, 0) << "pod " << index << ": " << run.output;
  }
  // The merge command the manifest documents.
  std::smatch merge;
  ASSERT_TRUE(
      std::regex_search(manifest, merge, std::regex(R"(garmentnet (merge-predictions .*))")));
  std::string merge_command = GARMENTNET_BINARY + std::string(" ") + merge[1].str();
  merge_command = std::regex_replace(merge_command, std::regex("/out"), (dir / "out").string());
  const auto merged = run_shell(merge_command);
  ASSERT_EQ(merged.exit_code, 0) << merged.output;

  const auto whole =
      run_garmentnet("predict --model " + shell_quote(fx.model) + " --input " +
                     shell_quote(fx.data / "test.parquet") + " --images " + shell_quote(fx.images) +
                     " --output " + shell_quote(dir / "whole.parquet"));
  ASSERT_EQ(whole.exit_code, 0) << whole.output;
  const Table expected = read_table(dir / "whole.parquet");
  const Table actual = read_table(dir / "out" / "predictions.parquet");
  ASSERT_EQ(actual.num_rows(), expected.num_rows());
  for (const auto& column : expected.columns())
    EXPECT_EQ(actual.column(column.name).values, column.values) << column.name;
}

}  // namespace
}  // namespace garmentnet::testing
