#include "infer/prediction_shards.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <fnmatch.h>

#include <algorithm>
#include <charconv>
#include <map>
#include <optional>
#include <regex>
#include <string>

#include "core/error.h"

namespace garmentnet {
namespace fs = std::filesystem;

namespace {

std::optional<size_t> parse_count(std::string_view text) {
  size_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

// A part file's name, taken apart.
struct PartName {
  std::string run;  // the output's stem and extension: predictions.parquet
  Shard shard;
};

std::optional<PartName> parse_part_name(const std::string& name) {
  static const std::regex pattern(R"(^(.*)\.part-(\d+)-of-(\d+)(\.parquet|\.csv)$)");
  std::smatch match;
  if (!std::regex_match(name, match, pattern)) return std::nullopt;
  const auto index = parse_count(match[2].str()), count = parse_count(match[3].str());
  if (!index || !count || *index >= *count) return std::nullopt;
  return PartName{.run = match[1].str() + match[4].str(), .shard = {*index, *count}};
}

}  // namespace

Shard parse_shard(std::string_view text) {
  const size_t slash = text.find('/');
  const auto index =
      slash == std::string_view::npos ? std::nullopt : parse_count(text.substr(0, slash));
  const auto count =
      slash == std::string_view::npos ? std::nullopt : parse_count(text.substr(slash + 1));
  if (!index || !count || *count == 0 || *index >= *count || *count > kMaxShards)
    fail(
        "--shard '{}' is not of the form I/N with 0 <= I < N <= {} (e.g. 0/4 … 3/4 for four "
        "shards; a Kubernetes Indexed Job passes $(JOB_COMPLETION_INDEX) as I)",
        text, kMaxShards);
  return {*index, *count};
}

std::pair<size_t, size_t> shard_rows(const Shard& shard, size_t rows, size_t batch) {
  if (batch == 0) fail_internal("shard_rows with batches of 0 rows");
  const size_t batches = rows / batch + (rows % batch != 0);
  // ⌊batches·i/count⌋ without forming batches·i (which could overflow): count ≤ kMaxShards.
  const auto boundary = [&](size_t i) {
    const size_t first_batch = batches / shard.count * i + batches % shard.count * i / shard.count;
    return std::min(rows, first_batch * batch);
  };
  return {boundary(shard.index), boundary(shard.index + 1)};
}

fs::path part_path(const fs::path& output, const Shard& shard) {
  return output.parent_path() / fmt::format("{}.part-{:05d}-of-{:05d}{}", output.stem().string(),
                                            shard.index, shard.count, output.extension().string());
}

bool names_parts(const fs::path& path) {
  std::error_code error;
  return fs::is_directory(path, error) ||
         path.filename().string().find_first_of("*?[") != std::string::npos;
}

std::vector<fs::path> find_parts(const fs::path& where) {
  std::error_code error;
  const bool folder = fs::is_directory(where, error);
  const fs::path dir = folder ? where : where.parent_path().empty() ? "." : where.parent_path();
  const std::string glob = folder ? "*" : where.filename().string();
  if (!fs::is_directory(dir, error))
    fail("{}: no such folder; name the folder holding the part files, or a glob of them",
         dir.string());

  std::map<std::string, std::map<size_t, fs::path>> runs;  // "name, N" → index → file
  for (const auto& entry : fs::directory_iterator(dir, error)) {
    const std::string name = entry.path().filename().string();
    if (!entry.is_regular_file() || fnmatch(glob.c_str(), name.c_str(), FNM_PERIOD) != 0) continue;
    const auto part = parse_part_name(name);
    if (!part) continue;
    runs[fmt::format("{} in {} parts", part->run, part->shard.count)][part->shard.index] =
        entry.path();
  }
  if (error) fail("cannot list {}: {}", dir.string(), error.message());
  if (runs.empty())
    fail(
        "{}: no part files (names like predictions.part-00000-of-00004.parquet, written by "
        "`predict --shard I/N`)",
        where.string());
  if (runs.size() > 1) {
    std::vector<std::string> names;
    for (const auto& [run, parts] : runs) names.push_back(run);
    fail("{} holds parts of {} different runs ({}); pass a glob matching one run's parts",
         where.string(), runs.size(), fmt::join(names, "; "));
  }
  const auto& parts = runs.begin()->second;
  const size_t count = parse_part_name(parts.begin()->second.filename().string())->shard.count;
  std::vector<size_t> missing;
  std::vector<fs::path> files;
  for (size_t i = 0; i < count; ++i) {
    const auto found = parts.find(i);
    if (found == parts.end()) {
      missing.push_back(i);
    } else {
      files.push_back(found->second);
    }
  }
  if (!missing.empty())
    fail("{}: part(s) {} of {} are missing (e.g. {}); run `predict --shard I/{}` for them first",
         where.string(), fmt::join(missing, ", "), count,
         part_path(dir / parse_part_name(files.front().filename().string())->run,
                   {missing.front(), count})
             .string(),
         count);
  return files;
}

}  // namespace garmentnet
