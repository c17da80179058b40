// Shards of a sharded predict: every row in exactly one shard, in order; part names; finding a
// complete set of parts and refusing an incomplete or mixed one.
#include "infer/prediction_shards.h"

#include <gtest/gtest.h>

#include "core/atomic_file.h"
#include "test_support.h"

namespace garmentnet {
namespace {

namespace fs = std::filesystem;
using testing::error_of;

TEST(PredictionShards, ParsesIOverNAndRefusesTheRest) {
  const Shard shard = parse_shard("3/16");
  EXPECT_EQ(shard.index, 3u);
  EXPECT_EQ(shard.count, 16u);
  EXPECT_TRUE(parse_shard("0/1").whole());
  for (const char* bad :
       {"", "3", "16/16", "1/0", "-1/4", "a/4", "1/4x", "1//4", " 1/4", "0/1000001"})
    EXPECT_NE(error_of([&] { parse_shard(bad); }).find("is not of the form I/N"), std::string::npos)
        << bad;
}

TEST(PredictionShards, ShardsAreWholeBatchesCoveringEveryRowOnceInOrder) {
  for (size_t rows : {0u, 1u, 2u, 7u, 50u, 1001u}) {
    for (size_t batch : {1u, 4u, 64u}) {
      for (size_t count = 1; count <= 9; ++count) {
        size_t next = 0, smallest = rows, largest = 0;
        for (size_t i = 0; i < count; ++i) {
          const auto [begin, end] = shard_rows({i, count}, rows, batch);
          EXPECT_EQ(begin, next) << rows << " rows, shard " << i << "/" << count;
          ASSERT_GE(end, begin);
          EXPECT_EQ(begin % batch, 0u) << "a shard starts with a whole batch";
          smallest = std::min(smallest, end - begin);
          largest = std::max(largest, end - begin);
          next = end;
        }
        EXPECT_EQ(next, rows);
        EXPECT_LE(largest - smallest, batch) << rows << " rows in " << count;
      }
    }
  }
  // No overflow for huge inputs.
  const size_t huge = (size_t{1} << 63) + 12345;
  EXPECT_EQ(shard_rows({kMaxShards - 1, kMaxShards}, huge, 1).second, huge);
  EXPECT_EQ(shard_rows({1, 3}, huge, 1).first, huge / 3);
}

TEST(PredictionShards, PartNamesAndFindingTheParts) {
  testing::TempDir dir;
  EXPECT_EQ(part_path(dir / "predictions.parquet", {3, 16}),
            dir / "predictions.part-00003-of-00016.parquet");
  EXPECT_TRUE(names_parts(dir.path()));
  EXPECT_TRUE(names_parts(dir / "predictions.part-*"));
  EXPECT_FALSE(names_parts(dir / "predictions.parquet"));

  for (size_t i : {2u, 0u, 1u}) write_file_atomically(part_path(dir / "p.parquet", {i, 3}), "x");
  write_file_atomically(dir / "p.parquet", "not a part");
  write_file_atomically(dir / "p.part-00000-of-00003.failures.csv", "not a part either");
  const std::vector<fs::path> expected{dir / "p.part-00000-of-00003.parquet",
                                       dir / "p.part-00001-of-00003.parquet",
                                       dir / "p.part-00002-of-00003.parquet"};
  EXPECT_EQ(find_parts(dir.path()), expected);
  EXPECT_EQ(find_parts(dir / "p.part-*"), expected);

  // Another run's parts beside them: a folder is ambiguous, a glob is not.
  write_file_atomically(part_path(dir / "q.csv", {0, 2}), "x");
  EXPECT_NE(error_of([&] { find_parts(dir.path()); }).find("parts of 2 different runs"),
            std::string::npos);
  EXPECT_EQ(find_parts(dir / "p.*"), expected);
  const std::string missing = error_of([&] { find_parts(dir / "q.*"); });
  EXPECT_NE(missing.find("part(s) 1 of 2 are missing"), std::string::npos) << missing;
  EXPECT_NE(missing.find("q.part-00001-of-00002.csv"), std::string::npos) << missing;
  EXPECT_NE(error_of([&] { find_parts(dir / "nothing-*"); }).find("no part files"),
            std::string::npos);
  EXPECT_NE(error_of([&] { find_parts(dir / "absent" / "p.*"); }).find("no such folder"),
            std::string::npos);
}

}  // namespace
}  // namespace garmentnet
