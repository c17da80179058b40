// `garmentnet explore` run as a user runs it, on the tiny fixture dataset.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "core/atomic_file.h"
#include "explore_fixture.h"
#include "test_support.h"

namespace garmentnet {
namespace {

TEST(ExploreCommand, PrintsCountsAndWritesASelfContainedReport) {
  testing::TempDir dir;
  testing::write_explore_fixture(dir.path());
  const auto out = dir / "report";
  const auto result = testing::run_garmentnet("explore --data " + dir.path().string() + " --out " +
                                              out.string() + " --seed 3");
  ASSERT_EQ(result.exit_code, 0) << result.output;
  // The terminal summary: overview lines and aligned tables.
  for (const char* line : {R"(\nrows read +11\n)", R"(\nexact duplicate rows +2\n)",
                           R"(\nmissing images +1 \(d\)\n)", R"(\nconflicting ids +1 \(h\)\n)"}) {
    EXPECT_TRUE(std::regex_search(result.output, std::regex(line))) << line << "\n"
                                                                    << result.output;
  }
  EXPECT_TRUE(std::regex_search(result.output, std::regex(R"(\nBLOUSES +3 +33\.3%)")))
      << result.output;
  EXPECT_TRUE(std::regex_search(result.output, std::regex(R"(\npolka dot +4 +44\.4%)")));
  EXPECT_NE(result.output.find("report.html"), std::string::npos);

  // Every image the report refers to exists beside it, by a relative path.
  const std::string html = read_file(out / "report.html");
  const std::regex image_reference(R"re(src="([^"]+)")re");
  std::set<std::string> images;
  for (auto it = std::sregex_iterator(html.begin(), html.end(), image_reference);
       it != std::sregex_iterator(); ++it) {
    images.insert((*it)[1].str());
  }
  EXPECT_GE(images.size(), 5u + 8u + 3u);  // charts, 5 category grids, 3 tag grids
  for (const auto& image : images) {
    EXPECT_FALSE(std::filesystem::path(image).is_absolute()) << image;
    EXPECT_EQ(image.rfind(".png"), image.size() - 4) << image;
    EXPECT_GT(std::filesystem::file_size(out / image), 100u) << image;
  }
  EXPECT_NE(html.find("samples/category_0_BLOUSES.png"), std::string::npos);
  EXPECT_NE(html.find("samples/tag_0_polka_dot.png"), std::string::npos);

  const auto json = nlohmann::json::parse(read_file(out / "explore.json"));
  EXPECT_EQ(json["train"]["rows_after_deduplication"], 9);
  EXPECT_EQ(json["train"]["missing_images"], nlohmann::json::array({"d"}));
  EXPECT_EQ(json["ids_in_train_and_test"], nlohmann::json::array({"a"}));

  // The same seed picks the same sample images; the grids are identical.
  const auto again = testing::run_garmentnet("explore --data " + dir.path().string() + " --out " +
                                             (dir / "again").string() + " --seed 3");
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_EQ(read_file(out / "samples/category_0_BLOUSES.png"),
            read_file(dir / "again" / "samples/category_0_BLOUSES.png"));
}

TEST(ExploreCommand, DefaultOutputFolderAndTaskFileInTheDataset) {
  testing::TempDir dir;
  testing::write_explore_fixture(dir.path());
  // A task with only the tag head: no category section, tags still counted.
  std::ofstream(dir / "task.json")
      << R"({"heads": [{"name": "tags", "kind": "multilabel", "tags": ["floral", "checker"]}]})";
  const auto result = testing::run_garmentnet("explore --data " + dir.path().string());
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_TRUE(std::filesystem::exists(dir / "explore" / "report.html"));
  EXPECT_TRUE(std::regex_search(result.output, std::regex(R"(\nfloral +4 +44\.4%)")))
      << result.output;
  EXPECT_EQ(result.output.find("polka dot  "), std::string::npos) << result.output;
}

TEST(ExploreCommand, MissingDatasetIsAOneLineError) {
  testing::TempDir dir;
  const auto result = testing::run_garmentnet("explore --data " + (dir / "nowhere").string());
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_NE(result.output.find("error: "), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("data.parquet"), std::string::npos) << result.output;
}

}  // namespace
}  // namespace garmentnet
