// The make-dataset command as a user runs it.
#include <gtest/gtest.h>

#include <filesystem>

#include "data/table.h"
#include "test_support.h"

namespace garmentnet {
namespace {

TEST(MakeDatasetCli, BuildsAndReportsWhatItMade) {
  testing::TempDir dir;
  const auto out = (dir / "garments").string();
  const auto result = testing::run_garmentnet(
      "make-dataset fashion-mnist --out " + out +
      " --train-size 40 --test-size 10 --source-size 20 --variants target,source,classic "
      "--classic-train-size 30 --classic-test-size 5 --image-size 48 --seed 3");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("target   41 rows in data.parquet (1 exact duplicate rows)"),
            std::string::npos)
      << result.output;
  EXPECT_NE(result.output.find("10 in test.parquet, 50 images -> " + out), std::string::npos)
      << result.output;
  EXPECT_NE(result.output.find("source   20 rows"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("classic  30 rows in data.parquet, 5 in test.parquet"),
            std::string::npos)
      << result.output;
  EXPECT_EQ(read_table(dir / "garments" / "data.parquet").num_rows(), 41u);

  // Asking again does not touch the dataset and says what to do.
  const auto again = testing::run_garmentnet("make-dataset fashion-mnist --out " + out);
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.output.find("already exists: pass --overwrite"), std::string::npos)
      << again.output;
}

TEST(MakeDatasetCli, RejectsBadFlagsClearly) {
  testing::TempDir dir;
  const auto out = (dir / "x").string();
  const auto variant =
      testing::run_garmentnet("make-dataset fashion-mnist --out " + out + " --variants shoes");
  EXPECT_NE(variant.exit_code, 0);
  EXPECT_NE(variant.output.find("shoes"), std::string::npos) << variant.output;

  const auto source = testing::run_garmentnet("make-dataset fashion-mnist --out " + out +
                                              " --fashion-mnist-dir " + (dir / "none").string());
  EXPECT_EQ(source.exit_code, 1);
  EXPECT_NE(source.output.find("error: "), std::string::npos);
  EXPECT_NE(source.output.find("--fashion-mnist-dir"), std::string::npos) << source.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "x"));
}

}  // namespace
}  // namespace garmentnet
