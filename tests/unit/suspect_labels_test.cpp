// Confident learning's suspect labels on hand-made out-of-fold probabilities.
#include "eval/suspect_labels.h"

#include <gtest/gtest.h>

namespace garmentnet {
namespace {

TEST(SuspectLabels, ARowConfidentlyOfAnotherClassIsSuspectAndTheRestAreNot) {
  // Three classes. Class 0's rows average 0.7 on class 0, class 1's 0.6 on class 1.
  const std::vector<float> probabilities = {
      0.8f, 0.1f, 0.1f,  // labelled 0, clearly 0
      0.6f, 0.3f, 0.1f,  // labelled 0, 0 below its threshold but nothing else confident
      0.1f, 0.8f, 0.1f,  // labelled 0, confidently 1: suspect
      0.2f, 0.7f, 0.1f,  // labelled 1, clearly 1
      0.5f, 0.5f, 0.0f,  // labelled 1, below both thresholds: not suspect
      0.3f, 0.3f, 0.4f,  // labelled 2, its own class: threshold 0.4, reached
      0.9f, 0.1f, 0.0f,  // no label: never suspect
  };
  const std::vector<int64_t> labels = {0, 0, 0, 1, 1, 2, -1};
  const std::vector<double> thresholds = confident_thresholds(probabilities, labels, 3);
  EXPECT_NEAR(thresholds[0], (0.8 + 0.6 + 0.1) / 3, 1e-6);
  EXPECT_NEAR(thresholds[1], (0.7 + 0.5) / 2, 1e-6);
  EXPECT_NEAR(thresholds[2], 0.4, 1e-6);

  const std::vector<SuspectLabel> suspects = find_suspect_labels(probabilities, labels, 3);
  ASSERT_EQ(suspects.size(), 1u);
  EXPECT_EQ(suspects[0].row, 2u);
  EXPECT_EQ(suspects[0].given, 0);
  EXPECT_EQ(suspects[0].predicted, 1);
  EXPECT_NEAR(suspects[0].confidence, 0.8, 1e-6);
  EXPECT_NEAR(suspects[0].given_probability, 0.1, 1e-6);
}

TEST(SuspectLabels, TheMostDoubtfulComeFirstAndTheMostProbableConfidentClassIsNamed) {
  // Thresholds: class 0 (0.9 + 0.9 + 0.0) / 3 = 0.6, class 1 (0.9 + 0.05) / 2 = 0.475,
  // class 2 (0.9 + 0.1) / 2 = 0.5.
  const std::vector<float> probabilities = {
      0.9f,  0.05f,
      0.05f,  // labelled 0
      0.9f,  0.05f,
      0.05f,  // labelled 0
      0.0f,  0.48f,
      0.52f,  // labelled 0: classes 1 and 2 both reach their thresholds; 2 is likelier
      0.05f, 0.9f,
      0.05f,  // labelled 1
      0.05f, 0.05f,
      0.9f,  // labelled 2
      0.05f, 0.05f,
      0.9f,  // labelled 1: confidently 2
      0.45f, 0.45f,
      0.1f,  // labelled 2: below every threshold
  };
  const std::vector<int64_t> labels = {0, 0, 0, 1, 2, 1, 2};
  const std::vector<SuspectLabel> suspects = find_suspect_labels(probabilities, labels, 3);
  ASSERT_EQ(suspects.size(), 2u);
  EXPECT_EQ(suspects[0].row, 2u);  // 0.0 of its given class: the most doubtful
  EXPECT_EQ(suspects[0].predicted, 2);
  EXPECT_EQ(suspects[1].row, 5u);
  EXPECT_EQ(suspects[1].predicted, 2);
}

}  // namespace
}  // namespace garmentnet
