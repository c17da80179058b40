// `garmentnet evaluate`: its numbers against an independent SQL computation, against scoring the
// predictions file, against `predict`; its report files; image failures and bad input.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "data/table.h"
#include "predict_fixture.h"

namespace garmentnet {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;
using testing::predict_fixture;
using testing::shell_quote;
using testing::sql_path;

json read_json(const fs::path& path) { return json::parse(read_file(path)); }

// Runs predict on the test split (full columns) and evaluate on its labels, once per process.
struct Runs {
  testing::TempDir dir;
  fs::path predictions;  // from `predict`
  fs::path evaluation;   // `evaluate` output folder
};

const Runs& runs() {
  static Runs r;
  static const bool done = [] {
    const auto& fx = predict_fixture();
    r.predictions = r.dir / "predictions.parquet";
    r.evaluation = r.dir / "evaluation";
    const auto predicted =
        testing::run_garmentnet("predict --model " + shell_quote(fx.model) + " --input " +
                                shell_quote(fx.data / "test.parquet") + " --images " +
                                shell_quote(fx.images) + " --output " + shell_quote(r.predictions));
    EXPECT_EQ(predicted.exit_code, 0) << predicted.output;
    const auto evaluated = testing::run_garmentnet(
        "evaluate --model " + shell_quote(fx.model) + " --labels " +
        shell_quote(fx.data / "test_labels.parquet") + " --images " + shell_quote(fx.images) +
        " --out " + shell_quote(r.evaluation) + " --bench-seconds 0.01");
    EXPECT_EQ(evaluated.exit_code, 0) << evaluated.output;
    EXPECT_NE(evaluated.output.find("top-1 accuracy"), std::string::npos) << evaluated.output;
    EXPECT_NE(evaluated.output.find("end-to-end predict"), std::string::npos) << evaluated.output;
    return true;
  }();
  (void)done;
  return r;
}

// SELECT … over the predictions joined with the labels (class as its alphabetical index `label`).
double sql_number(const std::string& select, const fs::path& predictions) {
  const auto& fx = predict_fixture();
  const std::string sql =
      "WITH l AS (SELECT DISTINCT uuid, "
      "list_position(['BLOUSES','CASUAL_DRESSES','MINI_DRESSES','SHIRTS',"
      "'TANK_TOPS'], cc3) - 1 AS label, \"polka dot\" AS l_polka, floral AS l_floral, checker AS "
      "l_checker "
      "FROM read_parquet(" +
      sql_path(fx.data / "test_labels.parquet") + ")), p AS (SELECT * FROM read_parquet(" +
      sql_path(predictions) + ")) SELECT " + select + " AS v FROM p JOIN l USING (uuid)";
  const Value value = query_sql(sql).column("v").values.at(0);
  return std::holds_alternative<double>(value) ? std::get<double>(value)
                                               : double(std::get<int64_t>(value));
}

TEST(Evaluate, NumbersEqualAnIndependentSqlComputation) {
  const Runs& r = runs();
  const json evaluation = read_json(r.evaluation / "evaluation.json");
  const double rows = sql_number("count(*)", r.predictions);
  EXPECT_EQ(evaluation["scored"].get<double>(), rows);
  EXPECT_NEAR(evaluation["summary"]["top1_accuracy"].get<double>(),
              sql_number("avg(CASE WHEN category1 = label THEN 1.0 ELSE 0.0 END)", r.predictions),
              1e-12);
  EXPECT_NEAR(
      evaluation["summary"]["top2_accuracy"].get<double>(),
      sql_number("avg(CASE WHEN category1 = label OR category2 = label THEN 1.0 ELSE 0.0 END)",
                 r.predictions),
      1e-12);
  // Confusion matrix cells: rows true class, columns top-1.
  const auto& confusion = evaluation["heads"]["cc3"]["confusion"];
  for (int t = 0; t < 5; ++t) {
    for (int p = 0; p < 5; ++p) {
      EXPECT_EQ(
          confusion[size_t(t)][size_t(p)].get<double>(),
          sql_number(fmt::format("count(*) FILTER (WHERE label = {} AND category1 = {})", t, p),
                     r.predictions));
    }
  }
  // Per-tag F1 of the 0/1 columns (F1 = 2 TP / (2 TP + FP + FN)).
  const std::vector<std::pair<std::string, std::string>> tags = {
      {"\"polka dot\"", "l_polka"}, {"floral", "l_floral"}, {"checker", "l_checker"}};
  for (size_t k = 0; k < tags.size(); ++k) {
    const auto& [predicted, label] = tags[k];
    const double tp = sql_number(
        fmt::format("count(*) FILTER (WHERE {} = 1 AND {} = 1)", predicted, label), r.predictions);
    const double fp = sql_number(
        fmt::format("count(*) FILTER (WHERE {} = 1 AND {} = 0)", predicted, label), r.predictions);
    const double fn = sql_number(
        fmt::format("count(*) FILTER (WHERE {} = 0 AND {} = 1)", predicted, label), r.predictions);
    const double f1 = tp == 0 ? 0 : 2 * tp / (2 * tp + fp + fn);
    const json& tag = evaluation["heads"]["tags"]["tags"][k];
    EXPECT_NEAR(tag["at_threshold"]["f1"].get<double>(), f1, 1e-12) << tag.dump();
    EXPECT_EQ(tag["at_threshold"]["true_positives"].get<double>(), tp);
  }
  EXPECT_GT(evaluation["summary"]["images_per_second"].get<double>(), 0);
  EXPECT_GT(evaluation["model"]["parameters"].get<int64_t>(), 1000);
  EXPECT_EQ(evaluation["model"]["file_bytes"].get<uintmax_t>(),
            fs::file_size(predict_fixture().model));
}

TEST(Evaluate, ScoringThePredictionsFileGivesTheSameDecisionMetrics) {
  const Runs& r = runs();
  const auto& fx = predict_fixture();
  testing::TempDir dir;
  const auto scored = testing::run_garmentnet(
      "evaluate --predictions " + shell_quote(r.predictions) + " --labels " +
      shell_quote(fx.data / "test_labels.parquet") + " --images " + shell_quote(fx.images) +
      " --out " + shell_quote(dir.path()));
  ASSERT_EQ(scored.exit_code, 0) << scored.output;
  const json from_file = read_json(dir / "evaluation.json");
  const json from_model = read_json(r.evaluation / "evaluation.json");
  EXPECT_EQ(from_file["source"], "predictions");
  for (const char* key : {"top1_accuracy", "top2_accuracy", "tags_macro_f1"}) {
    EXPECT_DOUBLE_EQ(from_file["summary"][key].get<double>(),
                     from_model["summary"][key].get<double>())
        << key;
  }
  EXPECT_EQ(from_file["heads"]["cc3"], from_model["heads"]["cc3"]);
  for (size_t k = 0; k < 3; ++k) {
    EXPECT_EQ(from_file["heads"]["tags"]["tags"][k]["at_threshold"],
              from_model["heads"]["tags"]["tags"][k]["at_threshold"]);
    // Decisions alone carry no ranking: no average precision is claimed.
    EXPECT_FALSE(from_file["heads"]["tags"]["tags"][k].contains("average_precision"));
  }
  EXPECT_TRUE(fs::exists(dir / "report.html"));
  EXPECT_FALSE(from_file.contains("benchmark"));  // no model ran: no speed to measure
}

TEST(Evaluate, ReportsTheSameSpeedFiguresAsBench) {
  const Runs& r = runs();
  const json evaluation = read_json(r.evaluation / "evaluation.json");
  ASSERT_TRUE(evaluation.contains("benchmark")) << evaluation.dump(2);
  const json& speed = evaluation["benchmark"];
  EXPECT_EQ(speed["model_file_bytes"].get<uintmax_t>(), fs::file_size(predict_fixture().model));
  EXPECT_EQ(speed["parameters"], evaluation["model"]["parameters"]);
  for (const char* figure : {"decode_images_per_second", "end_to_end_images_per_second",
                             "flops_per_image", "peak_gflops"}) {
    EXPECT_GT(speed[figure].get<double>(), 0) << figure;
  }
  EXPECT_GT(speed["peak_rss_bytes"].get<int64_t>(), 10'000'000);
  std::vector<int> optimised_batches;
  for (const json& m : speed["forward"]) {
    EXPECT_GT(m["images_per_second"].get<double>(), 0) << m;
    EXPECT_GT(m["fraction_of_peak"].get<double>(), 0) << m;
    if (m["variant"].get<std::string>().starts_with("optimized"))
      optimised_batches.push_back(m["batch_size"].get<int>());
  }
  EXPECT_EQ(optimised_batches, (std::vector<int>{1, 8, 32, 64}));
  ASSERT_FALSE(speed["latency_batch_1"].empty());
  for (const json& m : speed["latency_batch_1"]) {
    EXPECT_GT(m["p50_ms"].get<double>(), 0) << m;
    EXPECT_GE(m["p99_ms"].get<double>(), m["p50_ms"].get<double>()) << m;
  }
  const std::string html = read_file(r.evaluation / "report.html");
  EXPECT_NE(html.find("Inference speed"), std::string::npos);
  EXPECT_NE(html.find("end-to-end predict"), std::string::npos);
}

TEST(Evaluate, ScoresTheSameProbabilitiesThatPredictWrites) {
  const Runs& r = runs();
  const fs::path scored = r.evaluation / "predictions.parquet";
  ASSERT_TRUE(fs::exists(scored));
  const std::string sql =
      "SELECT max(abs(a.category1_probability - b.category1_probability) + "
      "abs(a.category2_probability - b.category2_probability) + "
      "abs(a.\"polka dot_probability\" - b.\"polka dot_probability\") + "
      "abs(a.floral_probability - b.floral_probability) + "
      "abs(a.checker_probability - b.checker_probability)) AS diff, "
      "count(*) FILTER (WHERE a.category1 <> b.category1 OR a.category2 <> b.category2 OR "
      "a.\"polka dot\" <> b.\"polka dot\" OR a.floral <> b.floral OR a.checker <> b.checker) "
      "AS different, count(*) AS n FROM read_parquet(" +
      sql_path(r.predictions) + ") a JOIN read_parquet(" + sql_path(scored) + ") b USING (uuid)";
  const Table result = query_sql(sql);
  EXPECT_EQ(std::get<int64_t>(result.column("n").values[0]),
            int64_t(read_table(r.predictions).num_rows()));
  EXPECT_EQ(std::get<int64_t>(result.column("different").values[0]), 0);
  EXPECT_LT(std::get<double>(result.column("diff").values[0]), 1e-6);
}

TEST(Evaluate, WritesTheReportWithItsPlots) {
  const Runs& r = runs();
  const std::string html = read_file(r.evaluation / "report.html");
  for (const char* plot : {"plots/cc3_confusion.png", "plots/tags_pr.png", "plots/tags_f1.png",
                           "plots/worst_mistakes.png"}) {
    EXPECT_NE(html.find(plot), std::string::npos) << plot;
    EXPECT_GT(fs::file_size(r.evaluation / plot), 1000u) << plot;
  }
  const json evaluation = read_json(r.evaluation / "evaluation.json");
  EXPECT_FALSE(evaluation["worst_mistakes"].empty());
}

TEST(Evaluate, UnreadableImagesAreListedLeftOutAndExitWithCode3) {
  const auto& fx = predict_fixture();
  testing::TempDir dir;
  const auto labels = dir / "labels.parquet";
  execute_sql("COPY (SELECT * FROM read_parquet(" + sql_path(fx.data / "test_labels.parquet") +
              ") LIMIT 12) TO " + sql_path(labels) + " (FORMAT parquet)");
  const Table table = read_table(labels);
  const auto ids = testing::column_text(table, "uuid");
  fs::create_directories(dir / "images");
  for (size_t i = 1; i < ids.size(); ++i) {
    fs::copy_file(fx.images / (ids[i] + ".jpeg"), dir / "images" / (ids[i] + ".jpeg"));
  }
  write_file_atomically(dir / "images" / (ids[3] + ".jpeg"),
                        "garbage");  // ids[0] missing, ids[3] corrupt
  const std::string arguments = "evaluate --model " + shell_quote(fx.model) + " --labels " +
                                shell_quote(labels) + " --images " + shell_quote(dir / "images") +
                                " --out " + shell_quote(dir / "eval") + " --bench-seconds 0";
  const auto run = testing::run_garmentnet(arguments);
  EXPECT_EQ(run.exit_code, 3) << run.output;
  EXPECT_NE(run.output.find(ids[0]), std::string::npos) << run.output;
  const json evaluation = read_json(dir / "eval/evaluation.json");
  EXPECT_EQ(evaluation["rows"], 12);
  EXPECT_EQ(evaluation["scored"], 10);
  ASSERT_EQ(evaluation["failures"].size(), 2u);
  EXPECT_EQ(evaluation["failures"][0]["id"], ids[0]);
  EXPECT_EQ(evaluation["failures"][1]["id"], ids[3]);
  EXPECT_EQ(evaluation["heads"]["cc3"]["count"], 10);
  EXPECT_EQ(testing::run_garmentnet(arguments + " --allow-missing").exit_code, 0);
}

TEST(Evaluate, MismatchedPredictionsAndBadInputAreOneLineErrors) {
  const Runs& r = runs();
  const auto& fx = predict_fixture();
  testing::TempDir dir;
  const std::string labels = sql_path(fx.data / "test_labels.parquet");
  const std::string predictions = sql_path(r.predictions);
  execute_sql("COPY (SELECT * FROM read_parquet(" + predictions + ") LIMIT 10) TO " +
              sql_path(dir / "fewer.parquet") + " (FORMAT parquet)");
  execute_sql("COPY (SELECT * FROM read_parquet(" + predictions +
              ") UNION ALL SELECT * REPLACE ('stranger' AS uuid) "
              "FROM (SELECT * FROM read_parquet(" +
              predictions + ") LIMIT 1)) TO " + sql_path(dir / "extra.parquet") +
              " (FORMAT parquet)");
  execute_sql("COPY (SELECT * EXCLUDE (floral) FROM read_parquet(" + predictions + ")) TO " +
              sql_path(dir / "no_floral.parquet") + " (FORMAT parquet)");
  execute_sql("COPY (SELECT * REPLACE (7 AS category1) FROM read_parquet(" + predictions +
              ")) TO " + sql_path(dir / "bad_class.parquet") + " (FORMAT parquet)");
  execute_sql("COPY (SELECT uuid AS id, cc3 FROM read_parquet(" + labels + ")) TO " +
              sql_path(dir / "labels_no_uuid.parquet") + " (FORMAT parquet)");

  const auto score = [&](const fs::path& file, const fs::path& label_file) {
    return testing::run_garmentnet("evaluate --predictions " + shell_quote(file) + " --labels " +
                                   shell_quote(label_file) + " --out " + shell_quote(dir / "eval"));
  };
  const fs::path test_labels = fx.data / "test_labels.parquet";
  const std::vector<std::pair<testing::CommandResult, std::string>> cases = {
      {score(dir / "fewer.parquet", test_labels), "have no row in"},
      {score(dir / "extra.parquet", test_labels), "'stranger'"},
      {score(dir / "no_floral.parquet", test_labels), "no_floral.parquet has no column 'floral'"},
      {score(dir / "bad_class.parquet", test_labels), "column 'category1' holds 7"},
      {score(r.predictions, dir / "labels_no_uuid.parquet"),
       "labels_no_uuid.parquet has no column 'uuid'"},
  };
  for (const auto& [run, message] : cases) {
    EXPECT_EQ(run.exit_code, 1) << run.output;
    EXPECT_EQ(run.output.rfind("error: ", 0), 0u) << run.output;
    EXPECT_EQ(std::count(run.output.begin(), run.output.end(), '\n'), 1) << run.output;
    EXPECT_NE(run.output.find(message), std::string::npos) << run.output;
  }
  EXPECT_FALSE(fs::exists(dir / "eval/evaluation.json"));
}

}  // namespace
}  // namespace garmentnet
