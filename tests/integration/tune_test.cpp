// `garmentnet tune`: stratified folds, training options by name, and a study that records every
// fold, resumes without training finished folds again (also after kill -9), and hands its best
// options to `train`.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <nlohmann/json.hpp>
#include <set>

#include "core/atomic_file.h"
#include "data/table.h"
#include "model/model_file.h"
#include "test_support.h"
#include "train/training_data.h"
#include "train/tuning.h"

namespace garmentnet::testing {
namespace {

TEST(Tune, FoldsPartitionTheRowsWithEveryCategorySpreadEvenly) {
  TrainOptions options = quick_train_options("unused", 1);
  options.folds = 3;
  std::multiset<std::string> validated;
  size_t rows = 0;
  for (options.fold = 0; options.fold < 3; ++options.fold) {
    const TrainingSplits splits = load_training_splits(options);
    rows = splits.train.size() + splits.validation.size();
    // Training and validation rows never share an id.
    const std::set<std::string> train(splits.train.ids.begin(), splits.train.ids.end());
    for (const std::string& id : splits.validation.ids) EXPECT_FALSE(train.count(id)) << id;
    validated.insert(splits.validation.ids.begin(), splits.validation.ids.end());
    // Each fold holds a third of every category, give or take one row.
    std::map<int64_t, int> in_fold, in_all;
    for (const int64_t label : splits.validation.labels.at("cc3")) ++in_fold[label];
    for (const int64_t label : splits.train.labels.at("cc3")) ++in_all[label];
    for (const auto& [label, count] : in_fold) {
      const int total = count + in_all[label];
      EXPECT_LE(std::abs(3 * count - total), 3) << "class " << label << " fold " << options.fold;
    }
  }
  // Every row is validated exactly once over the folds.
  EXPECT_EQ(validated.size(), rows);
  EXPECT_EQ(std::set<std::string>(validated.begin(), validated.end()).size(), rows);

  options.fold = 3;
  EXPECT_THROW(check_options(options), InputError);
}

TEST(Tune, OptionsAreSetByTheirConfigNamesAndWrongValuesAreNamed) {
  TrainOptions options;
  set_option(options, "head_lr", 0.01);
  set_option(options, "augment", "light");
  set_option(options, "epochs", 7);
  EXPECT_DOUBLE_EQ(options.head_lr, 0.01);
  EXPECT_EQ(options.augment, AugmentationPreset::Light);
  EXPECT_EQ(options.epochs, 7);
  const auto message_of = [&](const std::string& name, const nlohmann::json& value) {
    try {
      set_option(options, name, value);
    } catch (const InputError& error) {
      return std::string(error.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message_of("epochs", 2.5).find("option 'epochs'"), std::string::npos);
  EXPECT_NE(message_of("augment", "heavy").find("standard, light or none"), std::string::npos);
  EXPECT_NE(message_of("learning_rate", 0.1).find("head_lr"), std::string::npos);
  EXPECT_THROW(parse_search_space({{"dropout", {{"uniform", {0.5, 0.1}}}}}), InputError);
  EXPECT_THROW(parse_search_space({{"dropout", {{"normal", {0.1, 0.5}}}}}), InputError);
  EXPECT_THROW(parse_search_space({{"optimizer", {{"choice", {"adamw", "lion"}}}}}), InputError);
}

// Runs `arguments` with --resume and checks that it left `recorded`, a file of a finished fold,
// untouched and logged no `retrained` line (that fold's start); its output goes to `output`.
void resume_without_retraining(const std::string& arguments, const std::filesystem::path& recorded,
                               const std::string& retrained, std::string* output = nullptr) {
  const auto written = std::filesystem::last_write_time(recorded);
  const CommandResult resumed = run_garmentnet(arguments + " --resume");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_EQ(std::filesystem::last_write_time(recorded), written);
  EXPECT_EQ(resumed.output.find(retrained), std::string::npos) << resumed.output;
  if (output) *output = resumed.output;
}

TEST(Tune, AStudyRecordsEveryFoldResumesWithoutRetrainingAndHandsItsBestToTrain) {
  TempDir dir;
  write_file_atomically(dir / "space.json", R"({
    "epochs": 1, "image_size": 32, "batch_size": 32, "transfer": "scratch", "warmup_epochs": 0,
    "head_lr": {"log_uniform": [0.001, 0.01]},
    "augment": {"choice": ["none", "light"]}
  })");
  const std::string study = (dir / "study").string();
  const std::string arguments =
      fmt::format("tune --data '{}' --out '{}' --space '{}' --folds 2 --threads 2",
                  tiny_dataset().string(), study, (dir / "space.json").string());
  const CommandResult first = run_garmentnet(arguments + " --trials 2");
  ASSERT_EQ(first.exit_code, 0) << first.output;

  nlohmann::json state = nlohmann::json::parse(read_file(dir / "study/study.json"));
  ASSERT_EQ(state["trials"].size(), 2u) << state.dump(2);
  for (const nlohmann::json& trial : state["trials"]) {
    EXPECT_EQ(trial["folds"].size(), 2u);
    const double head_lr = trial["config"]["head_lr"];
    EXPECT_GE(head_lr, 0.001);
    EXPECT_LE(head_lr, 0.01);
  }
  EXPECT_NE(state["trials"][0]["config"], state["trials"][1]["config"]);
  // trials.parquet: a row per fold with the trial's options.
  const Table table = read_table(dir / "study/trials.parquet");
  EXPECT_EQ(table.num_rows(), 4u);
  EXPECT_NE(table.find("head_lr"), nullptr);
  EXPECT_NE(table.find("score"), nullptr);
  // The best trial is the one with the highest mean over its folds.
  const auto mean = [](const nlohmann::json& trial) {
    return (trial["folds"][0]["score"].get<double>() + trial["folds"][1]["score"].get<double>()) /
           2;
  };
  const int best = mean(state["trials"][0]) >= mean(state["trials"][1]) ? 0 : 1;
  EXPECT_EQ(state["best"]["trial"], best + 1);
  const nlohmann::json best_config =
      nlohmann::json::parse(read_file(dir / "study/best_config.json"));
  EXPECT_EQ(best_config["head_lr"], state["trials"][best]["config"]["head_lr"]);

  // The report shows the score against each searched option.
  const std::string report = read_file(dir / "study/report.html");
  for (const char* chart : {"plots/score_vs_head_lr.png", "plots/score_vs_augment.png"}) {
    EXPECT_NE(report.find(chart), std::string::npos) << chart;
    EXPECT_EQ(read_file(dir / "study" / chart).substr(1, 3), "PNG") << chart;
  }

  // Without --resume the study is not overwritten; with it, only the new trial trains.
  EXPECT_EQ(run_garmentnet(arguments + " --trials 3").exit_code, 1);
  ASSERT_NO_FATAL_FAILURE(resume_without_retraining(
      arguments + " --trials 3", dir / "study/trials/001/fold-0/metrics.json", "trial 1/3 fold"));
  state = nlohmann::json::parse(read_file(dir / "study/study.json"));
  EXPECT_EQ(state["trials"].size(), 3u);

  // `train --config` trains with the study's best options; flags after it still win.
  const CommandResult trained = run_garmentnet(
      fmt::format("train --data '{}' --out '{}' --config '{}' --seed 7 --no-report --threads 2",
                  tiny_dataset().string(), (dir / "refit").string(),
                  (dir / "study/best_config.json").string()));
  ASSERT_EQ(trained.exit_code, 0) << trained.output;
  const nlohmann::json config = nlohmann::json::parse(read_file(dir / "refit/config.json"));
  const nlohmann::json chosen = nlohmann::json::parse(read_file(dir / "study/best_config.json"));
  EXPECT_EQ(config["head_lr"], chosen["head_lr"]);
  EXPECT_EQ(config["augment"], chosen["augment"]);
  EXPECT_EQ(config["image_size"], 32);
  EXPECT_EQ(config["seed"], 7);
}

// A study killed with SIGKILL in the middle of a fold loses only that fold: resumed, it trains no
// recorded fold again and ends with every fold of every trial.
TEST(Tune, AStudyKilledMidFoldLosesOnlyThatFold) {
  TempDir dir;
  write_file_atomically(dir / "space.json", R"({
    "epochs": 6, "image_size": 32, "batch_size": 16, "transfer": "scratch", "warmup_epochs": 0,
    "patience": 0, "head_lr": {"log_uniform": [0.001, 0.01]}
  })");
  const std::string arguments = fmt::format(
      "tune --data '{}' --out '{}' --space '{}' --folds 2 --trials 2 --reduction-factor 0 "
      "--threads 2",
      tiny_dataset().string(), (dir / "study").string(), (dir / "space.json").string());
  const pid_t pid = start_garmentnet(arguments);
  const auto study_file = dir / "study/study.json";
  const auto second_fold = dir / "study/trials/001/fold-1";
  // Killed once trial 1's first fold is recorded and its second fold has trained an epoch.
  ASSERT_TRUE(wait_until([&] {
    return nlohmann::json::parse(read_file(study_file))["trials"][0]["folds"].size() == 1 &&
           !nlohmann::json::parse(read_file(second_fold / "metrics.json")).empty();
  }));
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  ASSERT_EQ(nlohmann::json::parse(read_file(study_file))["trials"][0]["folds"].size(), 1u)
      << "the second fold ended before the kill";

  std::string resumed;
  ASSERT_NO_FATAL_FAILURE(resume_without_retraining(
      arguments, dir / "study/trials/001/fold-0/model.gnm", "trial 1/2 fold 1/2", &resumed));
  EXPECT_NE(resumed.find("trial 1/2 fold 2/2"), std::string::npos) << resumed;
  const nlohmann::json state = nlohmann::json::parse(read_file(study_file));
  ASSERT_EQ(state["trials"].size(), 2u);
  for (const nlohmann::json& trial : state["trials"]) EXPECT_EQ(trial["folds"].size(), 2u);
  EXPECT_EQ(read_table(dir / "study/trials.parquet").num_rows(), 4u);
}

TEST(Tune, ABadTrialIsPrunedAtItsFirstRungNeverChosenAndTheBestIsRefittedAndEnsembled) {
  TempDir dir;
  // On the grid, trial 1's heads learn (head_lr 0.03) and trial 2 is the untrained model (every
  // learning rate 1e-7, the same initial weights): at the rung epoch 1 its fold 0 is below trial
  // 1's there, so it stops after that epoch.
  write_file_atomically(dir / "space.json", R"({
    "epochs": 3, "image_size": 32, "batch_size": 16, "transfer": "scratch", "warmup_epochs": 0,
    "patience": 0, "backbone_lr": 1e-7, "head_lr": {"choice": [0.03, 1e-7]}
  })");
  const CommandResult result = run_garmentnet(fmt::format(
      "tune --data '{}' --out '{}' --space '{}' --strategy grid --folds 2 --threads 2 "
      "--reduction-factor 3 --min-epochs 1 --refit --ensemble",
      tiny_dataset().string(), (dir / "study").string(), (dir / "space.json").string()));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  const nlohmann::json state = nlohmann::json::parse(read_file(dir / "study/study.json"));
  ASSERT_EQ(state["trials"].size(), 2u);
  const nlohmann::json& good = state["trials"][0];
  const nlohmann::json& bad = state["trials"][1];
  EXPECT_EQ(good["folds"].size(), 2u);
  EXPECT_FALSE(good.contains("pruned"));
  ASSERT_TRUE(bad.contains("pruned")) << bad.dump(2);
  EXPECT_EQ(bad["pruned"]["fold"], 0);
  EXPECT_EQ(bad["pruned"]["epoch"], 1);
  EXPECT_TRUE(bad["folds"].empty());
  EXPECT_EQ(state["best"]["trial"], 1);
  // It trained one epoch of one fold.
  const nlohmann::json metrics =
      nlohmann::json::parse(read_file(dir / "study/trials/002/fold-0/metrics.json"));
  EXPECT_EQ(metrics.size(), 1u);
  EXPECT_FALSE(std::filesystem::exists(dir / "study/trials/002/fold-1"));
  const Table table = read_table(dir / "study/trials.parquet");
  const Column& status = table.column("status");
  EXPECT_EQ(std::count(status.values.begin(), status.values.end(), Value("pruned")), 1);
  EXPECT_EQ(std::count(status.values.begin(), status.values.end(), Value("finished")), 2);
  // --refit trains the best options into a normal run folder.
  EXPECT_TRUE(std::filesystem::exists(dir / "study/refit/model.gnm"));
  const nlohmann::json refit = nlohmann::json::parse(read_file(dir / "study/refit/config.json"));
  EXPECT_EQ(refit["head_lr"], 0.03);
  EXPECT_EQ(refit["folds"], 0);
  // ... on every row (a fold model's training and validation rows together), for the folds'
  // median best epoch (of two: the later), at the mean of the fold models' tag thresholds.
  const ModelBundle refitted = load_model_file(dir / "study/refit/model.gnm");
  const ModelBundle fold0 = load_model_file(dir / "study/trials/001/fold-0/model.gnm");
  const ModelBundle fold1 = load_model_file(dir / "study/trials/001/fold-1/model.gnm");
  EXPECT_EQ(refitted.metadata["validation_rows"], 0);
  EXPECT_EQ(
      refitted.metadata["training_rows"].get<int>(),
      fold0.metadata["training_rows"].get<int>() + fold0.metadata["validation_rows"].get<int>());
  const int epochs = std::max(good["folds"][0]["best_epoch"].get<int>(),
                              good["folds"][1]["best_epoch"].get<int>());
  EXPECT_EQ(nlohmann::json::parse(read_file(dir / "study/refit/metrics.json")).size(),
            static_cast<size_t>(epochs));
  const std::vector<double> tags = refitted.thresholds("tags");
  ASSERT_EQ(tags.size(), fold0.thresholds("tags").size());
  for (size_t k = 0; k < tags.size(); ++k)
    EXPECT_NEAR(tags[k], (fold0.thresholds("tags")[k] + fold1.thresholds("tags")[k]) / 2, 1e-9);
  EXPECT_TRUE(std::filesystem::exists(dir / "study/refit/report.html"));
  // --ensemble: the best trial's two fold models as one model file that `evaluate` scores.
  const nlohmann::json ensemble = read_model_file_document(dir / "study/ensemble.gnm");
  EXPECT_EQ(ensemble["members"].size(), 2u);
  EXPECT_EQ(ensemble["metadata"]["options"]["head_lr"], 0.03);
  const CommandResult scored = run_garmentnet(fmt::format(
      "evaluate --model '{}' --labels '{}' --images '{}' --out '{}' --threads 2",
      (dir / "study/ensemble.gnm").string(), (tiny_dataset() / "test_labels.parquet").string(),
      (tiny_dataset() / "images").string(), (dir / "evaluation").string()));
  ASSERT_EQ(scored.exit_code, 0) << scored.output;
  const nlohmann::json evaluation =
      nlohmann::json::parse(read_file(dir / "evaluation/evaluation.json"));
  EXPECT_TRUE(evaluation["summary"].contains("top1_accuracy")) << evaluation.dump(2);
}

TEST(Tune, OnADatasetWithKnownWrongLabelsTheSuspectsAreScoredAgainstThem) {
  TempDir dir;
  const CommandResult made = run_garmentnet(fmt::format(
      "make-dataset fashion-mnist --out '{}' --variants target --train-size 300 --test-size 20 "
      "--image-size 32 --label-noise 0.1",
      (dir / "noisy").string()));
  ASSERT_EQ(made.exit_code, 0) << made.output;
  // 30 rows given another category than their own, and data.parquet holds the wrong one.
  const Table noise = read_table(dir / "noisy/label_noise.parquet");
  ASSERT_EQ(noise.num_rows(), 30u);
  std::map<std::string, std::string> given;
  for (size_t row = 0; row < noise.num_rows(); ++row) {
    const auto true_cc3 = std::get<std::string>(noise.column("true_cc3").values[row]);
    const auto given_cc3 = std::get<std::string>(noise.column("given_cc3").values[row]);
    EXPECT_NE(true_cc3, given_cc3);
    given[std::get<std::string>(noise.column("uuid").values[row])] = given_cc3;
  }
  const Table data = read_table(dir / "noisy/data.parquet");
  size_t checked = 0;
  for (size_t row = 0; row < data.num_rows(); ++row) {
    const auto found = given.find(std::get<std::string>(data.column("uuid").values[row]));
    if (found == given.end()) continue;
    EXPECT_EQ(std::get<std::string>(data.column("cc3").values[row]), found->second);
    ++checked;
  }
  EXPECT_GE(checked, 30u);

  write_file_atomically(dir / "space.json", R"({
    "epochs": 2, "image_size": 32, "batch_size": 32, "transfer": "scratch", "warmup_epochs": 0,
    "head_lr": 0.01
  })");
  const CommandResult tuned = run_garmentnet(fmt::format(
      "tune --data '{}' --out '{}' --space '{}' --trials 1 --folds 2 --threads 2",
      (dir / "noisy").string(), (dir / "study").string(), (dir / "space.json").string()));
  ASSERT_EQ(tuned.exit_code, 0) << tuned.output;
  const nlohmann::json state = nlohmann::json::parse(read_file(dir / "study/study.json"));
  const nlohmann::json& summary = state["suspect_labels"];
  ASSERT_TRUE(summary.is_object()) << state.dump(2);
  EXPECT_EQ(summary["known_wrong"], 30);
  EXPECT_GT(summary["rows_checked"].get<int>(), 250);
  // Every suspect is a training row whose likely category is not its given one.
  const Table suspects = read_table(dir / "study/suspect_labels.parquet");
  EXPECT_EQ(suspects.num_rows(), summary["suspects"].get<size_t>());
  size_t known = 0;
  for (size_t row = 0; row < suspects.num_rows(); ++row) {
    EXPECT_NE(suspects.column("given_label").values[row],
              suspects.column("predicted_label").values[row]);
    known += given.count(std::get<std::string>(suspects.column("id").values[row]));
  }
  if (suspects.num_rows() > 0) {
    EXPECT_DOUBLE_EQ(summary["precision"].get<double>(),
                     static_cast<double>(known) / static_cast<double>(suspects.num_rows()));
  }
  EXPECT_DOUBLE_EQ(summary["recall"].get<double>(), static_cast<double>(known) / 30);
  // Reading from the most doubtful: 8, 15, 30 and 60 rows for the 30 known wrong ones.
  ASSERT_EQ(summary["most_doubtful"].size(), 4u);
  EXPECT_EQ(summary["most_doubtful"][2]["rows"], 30);
  const nlohmann::json& all_known = summary["most_doubtful"][2];
  EXPECT_DOUBLE_EQ(all_known["precision"].get<double>(), all_known["recall"].get<double>());
  EXPECT_NE(read_file(dir / "study/report.html").find("Suspect labels"), std::string::npos);
}

}  // namespace
}  // namespace garmentnet::testing
