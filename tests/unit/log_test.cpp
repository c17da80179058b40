#include "core/log.h"

#include <gtest/gtest.h>

#include "core/atomic_file.h"
#include "test_support.h"

namespace garmentnet {
namespace {

// Two runs in one process (as `pretrain --compare-on` does) each keep their own train.log, and a
// line is on disk as soon as it is logged, so a killed run keeps its log.
TEST(LogFileTest, EachRunWritesOnlyItsOwnLinesAndFlushesAtOnce) {
  testing::TempDir dir;
  {
    const LogFile first(dir / "first.log");
    spdlog::info("line of the first run");
    EXPECT_NE(read_file(dir / "first.log").find("line of the first run"), std::string::npos);
  }
  {
    const LogFile second(dir / "second.log");
    spdlog::info("line of the second run");
  }
  spdlog::info("line after both runs");
  const std::string first = read_file(dir / "first.log");
  const std::string second = read_file(dir / "second.log");
  EXPECT_EQ(first.find("second run"), std::string::npos) << first;
  EXPECT_EQ(first.find("after both"), std::string::npos) << first;
  EXPECT_NE(second.find("line of the second run"), std::string::npos) << second;
  EXPECT_EQ(second.find("first run"), std::string::npos) << second;
}

}  // namespace
}  // namespace garmentnet
