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

fs::path temporary_sibling(const fs::path& target) {
  std::random_device random;
  return target.parent_path() /
         fmt::format(".{}.tmp-{}-{:x}", target.filename().string(), ::getpid(), random());
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
  if (target.has_parent_path()) {
    std::error_code ignored;
    fs::create_directories(target.parent_path(), ignored);
  }
  const fs::path temp = temporary_sibling(target);
  try {
    write(temp);
    if (!fs::exists(temp)) fail_internal("nothing was written for {}", target.string());
    sync_file(temp);
    fs::rename(temp, target);
  } catch (...) {
    std::error_code ignored;
    fs::remove_all(temp, ignored);
    throw;
  }
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
