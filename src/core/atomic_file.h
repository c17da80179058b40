// Crash-safe file writes: everything is written to a temporary file beside the target, flushed,
// and renamed over the target, so a reader sees the old file or the new one, never half of one.
#pragma once

#include <filesystem>
#include <functional>
#include <string_view>
#include <vector>

namespace garmentnet {

// Calls `write(temp_path)`, then renames temp_path to `target`. On any exception the temporary
// file is removed and the target is left untouched. Creates the parent folder if needed.
void write_atomically(const std::filesystem::path& target,
                      const std::function<void(const std::filesystem::path&)>& write);

// One file of a set written together: `write(temp_path)` writes its content (temp_path ends in
// the target's extension).
struct PendingFile {
  std::filesystem::path target;
  std::function<void(const std::filesystem::path&)> write;
};

// Writes several files as one (all outputs of one command): each to a temporary sibling of its
// target; only when all are written are they renamed over their targets, the files they replace
// kept aside until every rename has succeeded. On any failure (a full disk while writing, a
// rename refused) every target is left as it was and no temporary file remains.
void write_all_atomically(const std::vector<PendingFile>& files);

// Writes `content` to `target` atomically.
void write_file_atomically(const std::filesystem::path& target, std::string_view content);

// Reads a whole file; a clear InputError names the file if it cannot be read.
std::string read_file(const std::filesystem::path& path);

}  // namespace garmentnet
