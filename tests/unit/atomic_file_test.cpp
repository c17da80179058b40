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

TEST(AtomicFile, FilesWrittenTogetherAreCommittedAllOrNothing) {
  namespace fs = std::filesystem;
  testing::TempDir dir;
  const auto a = dir / "a.txt";
  const auto b = dir / "b.txt";
  write_file_atomically(a, "old a");
  const auto content = [](std::string text) {
    return [text](const fs::path& temp) { write_file_atomically(temp, text); };
  };
  const auto entries = [&] { return std::distance(fs::directory_iterator(dir.path()), {}); };
  // The second file cannot be written (a full disk): the first target keeps its old content.
  EXPECT_THROW(
      write_all_atomically(
          {{a, content("new a")},
           {b, [](const fs::path&) { throw InputError("cannot write b.txt: disk full"); }}}),
      InputError);
  EXPECT_EQ(read_file(a), "old a");
  EXPECT_FALSE(fs::exists(b));
  EXPECT_EQ(entries(), 1);
  // The second file cannot replace its target (a folder is in the way) after the first did:
  // the first is put back.
  fs::create_directories(b / "inside");
  try {
    write_all_atomically({{a, content("new a")}, {b, content("new b")}});
    FAIL() << "the rename over a folder succeeded";
  } catch (const InputError& error) {
    EXPECT_NE(std::string(error.what()).find("cannot replace"), std::string::npos) << error.what();
  }
  EXPECT_EQ(read_file(a), "old a");
  EXPECT_EQ(entries(), 2);
  fs::remove_all(b);
  write_all_atomically({{a, content("new a")}, {b, content("new b")}});
  EXPECT_EQ(read_file(a), "new a");
  EXPECT_EQ(read_file(b), "new b");
  EXPECT_EQ(entries(), 2);
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
