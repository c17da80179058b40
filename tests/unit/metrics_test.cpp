// Metrics against values worked out by hand; the arithmetic is in the comments.
#include "eval/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "eval/cross_fitting.h"
#include "train/epoch_metrics.h"

namespace garmentnet {
namespace {

constexpr double kTolerance = 1e-12;
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

TEST(Top2Classes, RanksByProbabilityAndBreaksTiesTowardsTheLowerIndex) {
  const std::vector<float> probabilities = {
      0.1f,  0.4f,  0.4f,  0.1f,   // tie for first between 1 and 2 -> (1, 2)
      0.25f, 0.25f, 0.25f, 0.25f,  // four-way tie -> (0, 1)
      0.1f,  0.2f,  0.3f,  0.4f,   // ascending -> (3, 2)
      0.5f,  0.1f,  0.2f,  0.2f,   // tie for second between 2 and 3 -> (0, 2)
      kNaN,  0.3f,  0.7f,  0.0f,   // NaN ranks last -> (2, 1)
  };
  const auto top2 = top2_classes(probabilities, 4);
  ASSERT_EQ(top2.size(), 5u);
  EXPECT_EQ(top2[0], (std::array<int64_t, 2>{1, 2}));
  EXPECT_EQ(top2[1], (std::array<int64_t, 2>{0, 1}));
  EXPECT_EQ(top2[2], (std::array<int64_t, 2>{3, 2}));
  EXPECT_EQ(top2[3], (std::array<int64_t, 2>{0, 2}));
  EXPECT_EQ(top2[4], (std::array<int64_t, 2>{2, 1}));
}

TEST(Top2Classes, SingleClassHasNoSecondAndRaggedInputIsRejected) {
  const std::vector<float> one_class = {0.3f, 0.9f};
  EXPECT_EQ(top2_classes(one_class, 1), (std::vector<std::array<int64_t, 2>>{{0, -1}, {0, -1}}));
  const std::vector<float> ragged = {0.1f, 0.2f, 0.3f};
  EXPECT_THROW(top2_classes(ragged, 2), InputError);
}

TEST(DecideTags, ATagIsOnAtOrAboveItsThreshold) {
  const std::vector<float> probabilities = {0.5f, 0.49f, 0.3f, 0.2f, 0.51f, 0.3f};
  const std::vector<double> thresholds = {0.5, 0.5, 0.3};
  EXPECT_EQ(decide_tags(probabilities, thresholds), (std::vector<int64_t>{1, 0, 1, 0, 1, 1}));
}

TEST(BinaryScores, NoPredictedPositivesGivesZeroPrecisionAndF1) {
  // TP 0, FP 0, FN 3: precision 0/0 -> 0, recall 0/3 = 0, F1 0/(0+0+3) = 0.
  const BinaryScores none = binary_scores(0, 0, 3);
  EXPECT_EQ(none.precision, 0.0);
  EXPECT_EQ(none.recall, 0.0);
  EXPECT_EQ(none.f1, 0.0);
  // TP 2, FP 1, FN 3: P = 2/3, R = 2/5, F1 = 2*2 / (2*2 + 1 + 3) = 1/2 (= 2PR/(P+R)).
  const BinaryScores some = binary_scores(2, 1, 3);
  EXPECT_NEAR(some.precision, 2.0 / 3, kTolerance);
  EXPECT_NEAR(some.recall, 2.0 / 5, kTolerance);
  EXPECT_NEAR(some.f1, 0.5, kTolerance);
}

// Classes A, B, C, D; D never occurs (no label, never predicted).
SoftmaxMetrics example_softmax_metrics() {
  const std::vector<float> probabilities = {
      0.7f, 0.2f, 0.1f, 0.0f,  // label A: top1 A, top2 B        -> top-1 hit
      0.2f, 0.5f, 0.3f, 0.0f,  // label C: top1 B, top2 C        -> top-2 hit only
      0.1f, 0.3f, 0.6f, 0.0f,  // label C: top1 C                -> top-1 hit
      0.4f, 0.4f, 0.2f, 0.0f,  // label B: tie, top1 A, top2 B   -> top-2 hit only
      0.3f, 0.3f, 0.4f, 0.0f,  // missing label                  -> ignored
      0.6f, 0.1f, 0.3f, 0.0f,  // label B: top1 A, top2 C        -> miss
  };
  const std::vector<int64_t> labels = {0, 2, 2, 1, -1, 1};
  return softmax_metrics(probabilities, labels, {"A", "B", "C", "D"});
}

TEST(SoftmaxMetrics, AccuraciesIgnoreMissingLabels) {
  const SoftmaxMetrics metrics = example_softmax_metrics();
  EXPECT_EQ(metrics.count, 5);
  EXPECT_EQ(metrics.missing, 1);
  EXPECT_NEAR(metrics.top1_accuracy, 2.0 / 5, kTolerance);  // rows 0 and 2
  EXPECT_NEAR(metrics.top2_accuracy, 4.0 / 5, kTolerance);  // rows 0, 1, 2 and 3
}

TEST(SoftmaxMetrics, ConfusionMatrixAndPerClassScores) {
  const SoftmaxMetrics metrics = example_softmax_metrics();
  // Rows are true classes, columns top-1 predictions.
  const std::vector<std::vector<int64_t>> expected = {
      {1, 0, 0, 0},  // A: row 0 -> A
      {2, 0, 0, 0},  // B: rows 3, 5 -> A
      {0, 1, 1, 0},  // C: row 1 -> B, row 2 -> C
      {0, 0, 0, 0},
  };
  EXPECT_EQ(metrics.confusion, expected);
  ASSERT_EQ(metrics.classes.size(), 4u);
  // A: TP 1, predicted 3 -> FP 2, support 1 -> FN 0. P 1/3, R 1, F1 2/(2+2+0) = 1/2.
  EXPECT_EQ(metrics.classes[0].support, 1);
  EXPECT_NEAR(metrics.classes[0].scores.precision, 1.0 / 3, kTolerance);
  EXPECT_NEAR(metrics.classes[0].scores.recall, 1.0, kTolerance);
  EXPECT_NEAR(metrics.classes[0].scores.f1, 0.5, kTolerance);
  // B: TP 0, FP 1 (row 1), FN 2. P 0, R 0, F1 0.
  EXPECT_EQ(metrics.classes[1].support, 2);
  EXPECT_EQ(metrics.classes[1].scores.false_positives, 1);
  EXPECT_EQ(metrics.classes[1].scores.f1, 0.0);
  // C: TP 1, FP 0, FN 1. P 1, R 1/2, F1 2/(2+0+1) = 2/3.
  EXPECT_NEAR(metrics.classes[2].scores.precision, 1.0, kTolerance);
  EXPECT_NEAR(metrics.classes[2].scores.recall, 0.5, kTolerance);
  EXPECT_NEAR(metrics.classes[2].scores.f1, 2.0 / 3, kTolerance);
  // D: nothing at all; F1 is undefined and reported as 0.
  EXPECT_EQ(metrics.classes[3].support, 0);
  EXPECT_EQ(metrics.classes[3].scores.f1, 0.0);
  // Macro-F1 over A, B, C (D never occurs): (1/2 + 0 + 2/3) / 3 = 7/18.
  EXPECT_NEAR(metrics.macro_f1, 7.0 / 18, kTolerance);
}

TEST(SoftmaxMetrics, JsonCarriesTheNumbers) {
  const nlohmann::json json = example_softmax_metrics().to_json();
  EXPECT_EQ(json["count"], 5);
  EXPECT_NEAR(json["top2_accuracy"].get<double>(), 0.8, kTolerance);
  EXPECT_EQ(json["confusion"][1][0], 2);
  EXPECT_EQ(json["classes"][2]["name"], "C");
  EXPECT_NEAR(json["classes"][2]["f1"].get<double>(), 2.0 / 3, kTolerance);
  EXPECT_EQ(json["classes"][2]["support"], 2);
}

TEST(SoftmaxMetrics, RejectsAClassIndexOutOfRangeNamingTheRow) {
  const std::vector<float> probabilities = {0.5f, 0.5f, 0.9f, 0.1f};
  const std::vector<int64_t> labels = {1, 2};
  try {
    softmax_metrics(probabilities, labels, {"x", "y"});
    FAIL() << "expected an InputError";
  } catch (const InputError& error) {
    EXPECT_NE(std::string(error.what()).find("row 1"), std::string::npos) << error.what();
  }
}

// Four tags over seven rows, given per tag and interleaved into the row-major layout; -1 pads.
struct TagExample {
  std::vector<std::string> names = {"ap", "midpoint", "tie", "none"};
  std::vector<float> probabilities;
  std::vector<int64_t> labels;

  TagExample() {
    const std::vector<std::vector<float>> scores = {
        {0.9f, 0.8f, 0.8f, 0.4f, 0.3f, 0.95f, 0.5f},
        {0.9f, 0.7f, 0.6f, 0.2f, 0.1f, 0.5f, 0.5f},
        {0.9f, 0.8f, 0.7f, 0.6f, 0.5f, 0.4f, 0.1f},
        {0.9f, 0.2f, 0.1f, 0.6f, 0.45f, 0.4f, 0.1f},
    };
    const std::vector<std::vector<int64_t>> tag_labels = {
        {1, 0, 1, 0, 1, -1, -1},  // the 0.95 and 0.5 rows are unlabelled
        {1, 0, 1, 0, 0, -1, -1},
        {1, 0, 1, 0, 0, 1, 0},
        {0, 0, -1, 0, 0, 0, 0},  // no positive at all
    };
    for (std::size_t row = 0; row < 7; ++row) {
      for (std::size_t tag = 0; tag < names.size(); ++tag) {
        probabilities.push_back(scores[tag][row]);
        labels.push_back(tag_labels[tag][row]);
      }
    }
  }
};

TEST(MultiLabelMetrics, AveragePrecisionFollowsTheSklearnDefinition) {
  const TagExample example;
  const std::vector<double> thresholds(4, 0.5);
  const MultiLabelMetrics metrics =
      multilabel_metrics(example.probabilities, example.labels, example.names, thresholds);
  // Tag "ap", labelled rows sorted by score: 0.9(1) 0.8(0) 0.8(1) 0.4(0) 0.3(1); 3 positives.
  // Distinct thresholds -> (TP, FP), P, R:
  //   0.9 -> (1, 0) P 1    R 1/3
  //   0.8 -> (2, 1) P 2/3  R 2/3
  //   0.4 -> (2, 2) P 1/2  R 2/3
  //   0.3 -> (3, 2) P 3/5  R 1
  // AP = sum (R_n - R_{n-1}) P_n = 1/3*1 + 1/3*2/3 + 0*1/2 + 1/3*3/5 = 1/3 + 2/9 + 1/5 = 34/45.
  // (numpy check of the same formula: 0.7555555555555555.) Counting the unlabelled 0.95 row as
  // a negative would give 0.9(1) below it and a smaller AP.
  EXPECT_NEAR(metrics.tags[0].average_precision, 34.0 / 45, kTolerance);
  EXPECT_EQ(metrics.tags[0].count, 5);
  EXPECT_EQ(metrics.tags[0].positives, 3);
  // Tag "midpoint": 0.9(1) 0.7(0) 0.6(1) 0.2(0) 0.1(0), 2 positives.
  // AP = 1/2*1 + 0*1/2 + 1/2*2/3 + 0 + 0 = 5/6.
  EXPECT_NEAR(metrics.tags[1].average_precision, 5.0 / 6, kTolerance);
  // Tag "tie": 0.9(1) 0.8(0) 0.7(1) 0.6(0) 0.5(0) 0.4(1) 0.1(0), 3 positives.
  // AP = 1/3*1 + 1/3*2/3 + 1/3*3/6 = 1/3 + 2/9 + 1/6 = 13/18.
  EXPECT_NEAR(metrics.tags[2].average_precision, 13.0 / 18, kTolerance);
  // Tag "none" has no positive: AP 0, left out of the mean.
  EXPECT_FALSE(metrics.tags[3].has_positives());
  EXPECT_EQ(metrics.tags[3].average_precision, 0.0);
  EXPECT_NEAR(metrics.mean_average_precision, (34.0 / 45 + 5.0 / 6 + 13.0 / 18) / 3, kTolerance);
}

TEST(MultiLabelMetrics, ScoresAtTheGivenThresholdsAndAtOneHalf) {
  const TagExample example;
  const std::vector<double> thresholds = {0.15, 0.5, 0.65, 0.95};
  const MultiLabelMetrics metrics =
      multilabel_metrics(example.probabilities, example.labels, example.names, thresholds);
  // "ap" at 0.15: all 5 labelled rows on -> TP 3, FP 2, FN 0: P 3/5, R 1, F1 6/8 = 3/4.
  EXPECT_NEAR(metrics.tags[0].at_threshold.precision, 0.6, kTolerance);
  EXPECT_NEAR(metrics.tags[0].at_threshold.recall, 1.0, kTolerance);
  EXPECT_NEAR(metrics.tags[0].at_threshold.f1, 0.75, kTolerance);
  // "ap" at 0.5: 0.9, 0.8, 0.8 on -> TP 2, FP 1, FN 1: F1 4/6 = 2/3.
  EXPECT_NEAR(metrics.tags[0].at_default.f1, 2.0 / 3, kTolerance);
  // "midpoint" at 0.5: 0.9, 0.7, 0.6 on -> TP 2, FP 1, FN 0: F1 4/5.
  EXPECT_NEAR(metrics.tags[1].at_threshold.f1, 0.8, kTolerance);
  // "tie" at 0.65: 0.9, 0.8, 0.7 on -> TP 2, FP 1, FN 1: F1 4/6.
  EXPECT_NEAR(metrics.tags[2].at_threshold.f1, 2.0 / 3, kTolerance);
  // "tie" at 0.5: 0.9 .. 0.5 on -> TP 2, FP 3, FN 1: F1 4/8.
  EXPECT_NEAR(metrics.tags[2].at_default.f1, 0.5, kTolerance);
  // "none" at 0.95: nothing on, nothing positive -> F1 undefined, left out of the macro mean.
  EXPECT_EQ(metrics.tags[3].at_threshold.f1, 0.0);
  EXPECT_NEAR(metrics.macro_f1, (0.75 + 0.8 + 2.0 / 3) / 3, kTolerance);
  // "none" at 0.5: rows 0.9 and 0.6 on -> 2 FP, F1 0, and it counts in the macro mean.
  EXPECT_EQ(metrics.tags[3].at_default.false_positives, 2);
  EXPECT_NEAR(metrics.macro_f1_at_default, (2.0 / 3 + 0.8 + 0.5 + 0.0) / 4, kTolerance);
}

TEST(MultiLabelMetrics, ATagWithPositivesButNoPredictionsHasZeroF1) {
  const std::vector<float> probabilities = {0.1f, 0.2f, 0.3f};
  const std::vector<int64_t> labels = {1, 0, 1};
  const std::vector<double> thresholds = {0.5};
  const MultiLabelMetrics metrics = multilabel_metrics(probabilities, labels, {"t"}, thresholds);
  // Nothing reaches 0.5: TP 0, FP 0, FN 2 -> P 0, R 0, F1 0, which enters the macro mean.
  EXPECT_EQ(metrics.tags[0].at_threshold.precision, 0.0);
  EXPECT_EQ(metrics.tags[0].at_threshold.false_negatives, 2);
  EXPECT_EQ(metrics.tags[0].at_threshold.f1, 0.0);
  EXPECT_EQ(metrics.macro_f1, 0.0);
  // AP still ranks: 0.3(1) 0.2(0) 0.1(1) -> 1/2*1 + 0 + 1/2*2/3 = 5/6.
  EXPECT_NEAR(metrics.tags[0].average_precision, 5.0 / 6, kTolerance);
}

TEST(MultiLabelMetrics, RejectsLabelsOtherThanZeroOneOrMissing) {
  const std::vector<float> probabilities = {0.1f, 0.2f};
  const std::vector<int64_t> labels = {1, 2};
  const std::vector<double> thresholds = {0.5};
  try {
    multilabel_metrics(probabilities, labels, {"floral"}, thresholds);
    FAIL() << "expected an InputError";
  } catch (const InputError& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("row 1"), std::string::npos) << message;
    EXPECT_NE(message.find("floral"), std::string::npos) << message;
  }
}

TEST(PrecisionRecallCurves, OnePointPerDistinctThresholdHighestFirst) {
  const TagExample example;
  const auto curves = precision_recall_curves(example.probabilities, example.labels, example.names);
  ASSERT_EQ(curves.size(), 4u);
  const auto& points = curves[0].points;  // the "ap" tag worked out above
  ASSERT_EQ(points.size(), 4u);
  const double expected[4][3] = {
      {0.9, 1.0, 1.0 / 3}, {0.8, 2.0 / 3, 2.0 / 3}, {0.4, 0.5, 2.0 / 3}, {0.3, 0.6, 1.0}};
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_NEAR(points[i].threshold, expected[i][0], 1e-6);
    EXPECT_NEAR(points[i].precision, expected[i][1], kTolerance);
    EXPECT_NEAR(points[i].recall, expected[i][2], kTolerance);
  }
  EXPECT_TRUE(curves[3].points.empty());  // no positives, no curve
}

TEST(TuneTagThresholds, PicksTheF1MaximumAndPlacesTheThresholdInTheGapBelow) {
  const TagExample example;
  const auto tuned = tune_tag_thresholds(example.probabilities, example.labels, example.names);
  ASSERT_EQ(tuned.size(), 4u);
  // "ap": F1 = 2TP/(2TP+FP+FN) at 0.9: 2/4, 0.8: 4/6, 0.4: 4/7, 0.3: 6/8 -> best 0.3, the lowest
  // score, so the threshold is 0.3/2 = 0.15.
  EXPECT_TRUE(tuned[0].tuned);
  EXPECT_NEAR(tuned[0].threshold, 0.15, 1e-6);
  EXPECT_NEAR(tuned[0].f1, 0.75, kTolerance);
  // "midpoint": 0.9: 2/3, 0.7: 2/4, 0.6: 4/5, 0.2: 4/6, 0.1: 4/7 -> best 0.6; next lower 0.2,
  // threshold (0.6 + 0.2)/2 = 0.4.
  EXPECT_NEAR(tuned[1].threshold, 0.4, 1e-6);
  EXPECT_NEAR(tuned[1].f1, 0.8, kTolerance);
  // "tie": 0.9: 2/4, 0.8: 2/5, 0.7: 4/6, 0.6: 4/7, 0.5: 4/8, 0.4: 6/9, 0.1: 6/10.
  // 0.7 and 0.4 tie at 2/3; the lower (0.4) wins, threshold (0.4 + 0.1)/2 = 0.25.
  EXPECT_NEAR(tuned[2].threshold, 0.25, 1e-6);
  EXPECT_NEAR(tuned[2].f1, 2.0 / 3, kTolerance);
  // "none": no positive -> 0.5 kept, F1 0, flagged.
  EXPECT_FALSE(tuned[3].tuned);
  EXPECT_EQ(tuned[3].threshold, 0.5);
  EXPECT_EQ(tuned[3].f1, 0.0);
  EXPECT_EQ(tuned[3].to_json()["tuned"], false);
}

TEST(TuneTagThresholds, TheTunedThresholdReproducesTheBestF1) {
  const TagExample example;
  const auto tuned = tune_tag_thresholds(example.probabilities, example.labels, example.names);
  std::vector<double> thresholds;
  for (const auto& entry : tuned) thresholds.push_back(entry.threshold);
  const auto metrics =
      multilabel_metrics(example.probabilities, example.labels, example.names, thresholds);
  for (std::size_t tag = 0; tag < 3; ++tag) {
    EXPECT_NEAR(metrics.tags[tag].at_threshold.f1, tuned[tag].f1, kTolerance) << tag;
  }
}

// Thresholds tuned on the rows they score look better than they are; cross-fitted scores decide
// each half at the other half's thresholds. Even rows separate at 0.5 (0.9 against 0.1), odd rows
// at 0.25 (0.3 against 0.2): tuned on all rows, 0.25 decides every row right (F1 1); cross-fitted,
// the odd positives fall below the even rows' 0.5 (recall 0.5, precision 1, F1 2/3).
TEST(CrossFittedTagScores, NoRowIsDecidedAtAThresholdTunedOnIt) {
  const std::vector<std::string> tags{"floral"};
  const std::vector<float> probabilities{0.9f, 0.3f, 0.1f, 0.2f, 0.9f, 0.3f, 0.1f, 0.2f};
  const std::vector<int64_t> labels{1, 1, 0, 0, 1, 1, 0, 0};
  EXPECT_DOUBLE_EQ(tune_tag_thresholds(probabilities, labels, tags)[0].f1, 1.0);
  const CrossFittedTagScores scores = cross_fitted_tag_scores(probabilities, labels, tags);
  ASSERT_EQ(scores.tags.size(), 1u);
  EXPECT_EQ(scores.tags[0].true_positives, 2);
  EXPECT_EQ(scores.tags[0].false_negatives, 2);
  EXPECT_EQ(scores.tags[0].false_positives, 0);
  EXPECT_NEAR(scores.tags[0].f1, 2.0 / 3.0, 1e-12);
  EXPECT_NEAR(scores.macro_f1, 2.0 / 3.0, 1e-12);
}

}  // namespace
}  // namespace garmentnet

namespace garmentnet {
namespace {

// metrics.json, checkpoints and model files hold the typed metrics as JSON: reading back what was
// written gives the same structs (compared through their JSON, which carries every field).
TEST(MetricsJson, EpochRecordsRoundTripThroughJson) {
  const TagExample example;
  const std::vector<double> thresholds = {0.15, 0.5, 0.65, 0.95};
  HeadMetrics category{.loss = 1.25, .softmax = example_softmax_metrics()};
  HeadMetrics tags{.loss = 0.5,
                   .multilabel = multilabel_metrics(example.probabilities, example.labels,
                                                    example.names, thresholds)};
  SplitMetrics split{.loss = 1.75, .score = 0.5, .heads = {{"cc3", category}, {"tags", tags}}};
  const EpochRecord record{
      .epoch = 3, .lr_factor = 0.25, .seconds = 1.5, .train = split, .validation = split};
  const nlohmann::json written = history_to_json({record, record});
  const TrainingHistory read = history_from_json(nlohmann::json::parse(written.dump()));
  ASSERT_EQ(read.size(), 2u);
  EXPECT_EQ(history_to_json(read), written);
  EXPECT_EQ(read[1].validation.head("cc3").softmax->confusion, category.softmax->confusion);
  EXPECT_EQ(read[1].validation.head("tags").multilabel->tags[2].at_default.f1,
            tags.multilabel->tags[2].at_default.f1);
  EXPECT_FALSE(read[0].train.head("tags").softmax.has_value());
  EXPECT_EQ(read[0].train.head("cc3").score(), category.softmax->top1_accuracy);
}

}  // namespace
}  // namespace garmentnet
