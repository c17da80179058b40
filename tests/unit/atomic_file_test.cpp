#include "core/atomic_file.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "test_support.h"

namespace garmentnet {
namespace {

TEST(AtomicFile, WritesAndReplacesWholeFiles) {
  testing::TempDir dir;
  const auto target = dir / "sub/out.txt";
  write_file_atomically(target, "first");
  EXPECT_EQ(read_file(target), "first");
  write_file_atomically(target, "second");
  EXPECT_EQ(read_file(target), "second");
  // No temporary files are left beside the target.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(target.parent_path()), {}), 1);
}

TEST(AtomicFile, FailedWriteLeavesTheOldFileAndNoTemporary) {
  testing::TempDir dir;
  const auto target = dir / "out.txt";
  write_file_atomically(target, "good");
  EXPECT_THROW(write_atomically(target,
                                [](const std::filesystem::path& temp) {
                                  write_file_atomically(temp, "half");
                                  throw std::runtime_error("disk full");
                                }),
               std::runtime_error);
  EXPECT_EQ(read_file(target), "good");
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 1);
}

TEST(AtomicFile, ReadingAMissingFileNamesIt) {
  try {
    read_file("/nonexistent/garmentnet.txt");
    FAIL();
  } catch (const InputError& error) {
    EXPECT_NE(std::string(error.what()).find("/nonexistent/garmentnet.txt"), std::string::npos);
  }
}

}  // namespace
}  // namespace garmentnet
