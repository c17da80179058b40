#include "core/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "core/error.h"

namespace garmentnet {
namespace fs = std::filesystem;

namespace {

// A hidden sibling ending in the target's extension, so that writers that choose the format by
// extension (write_table) can write it.
fs::path temporary_sibling(const fs::path& target) {
  std::random_device random;
  return target.parent_path() / fmt::format(".{}.tmp-{}-{:x}{}", target.filename().string(),
                                            ::getpid(), random(), target.extension().string());
}

void sync_file(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

void write_atomically(const fs::path& target, const std::function<void(const fs::path&)>& write) {
  write_all_atomically({{.target = target, .write = write}});
}

void write_all_atomically(const std::vector<PendingFile>& files) {
  struct Step {
    fs::path target;
    fs::path temp;
    bool replaces = false;  // the target existed
    fs::path previous;      // a hard link to it, kept until all renames succeed ("": none made)
    bool committed = false;
  };
  std::vector<Step> steps;
  const auto remove_quietly = [](const fs::path& path) {
    std::error_code ignored;
    if (!path.empty()) fs::remove_all(path, ignored);
  };
  try {
    for (const PendingFile& file : files) {
      if (file.target.has_parent_path()) {
        std::error_code ignored;
        fs::create_directories(file.target.parent_path(), ignored);
      }
      steps.push_back({.target = file.target, .temp = temporary_sibling(file.target)});
      file.write(steps.back().temp);
      if (!fs::exists(steps.back().temp))
        fail_internal("nothing was written for {}", file.target.string());
      sync_file(steps.back().temp);
    }
    for (Step& step : steps) {
      std::error_code error;
      step.replaces = fs::exists(step.target, error);
      if (step.replaces) {
        // A file system without hard links gets no way back for this one, but still the commit.
        const fs::path link = temporary_sibling(step.target);
        fs::create_hard_link(step.target, link, error);
        if (!error) step.previous = link;
      }
      fs::rename(step.temp, step.target, error);
      if (error) {
        fail("cannot replace {}: {}; {} left as {} were", step.target.string(), error.message(),
             steps.size() == 1 ? "it is" : "all outputs are", steps.size() == 1 ? "it" : "they");
      }
      step.committed = true;
    }
  } catch (...) {
    for (Step& step : steps) {
      std::error_code ignored;
      if (!step.committed) {
        remove_quietly(step.previous);
        remove_quietly(step.temp);
      } else if (!step.previous.empty()) {
        fs::rename(step.previous, step.target, ignored);
      } else if (!step.replaces) {
        fs::remove(step.target, ignored);
      }
    }
    throw;
  }
  for (const Step& step : steps) remove_quietly(step.previous);
}

void write_file_atomically(const fs::path& target, std::string_view content) {
  write_atomically(target, [&](const fs::path& temp) {
    std::ofstream out(temp, std::ios::binary);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    out.close();
    if (!out) fail("cannot write {}: {}", target.string(), std::strerror(errno));
  });
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read {}: {}", path.string(), std::strerror(errno));
  std::ostringstream content;
  content << in.rdbuf();
  return std::move(content).str();
}

}  // namespace garmentnet
