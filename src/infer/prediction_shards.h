// Sharded batch prediction: `predict --shard I/N` predicts a contiguous, deterministic slice of the
// input rows and writes a part file named after the output; the N parts, concatenated in shard
// order (`merge-predictions`, or `evaluate --predictions` on the folder), are exactly the output of
// one unsharded run: same rows, same order, same values. One shard per pod of a Kubernetes Indexed
// Job (docs/scale-out.md). Torch-free.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string_view>
#include <utility>
#include <vector>

namespace garmentnet {

constexpr size_t kMaxShards = 1'000'000;

struct Shard {
  size_t index = 0;  // 0-based, below count
  size_t count = 1;  // 1: the whole input

  bool whole() const { return count == 1; }
};

// "I/N" with 0 <= I < N <= kMaxShards; an InputError saying the form otherwise.
Shard parse_shard(std::string_view text);

// The rows [begin, end) of `rows` that shard `shard` predicts, in whole batches of `batch` rows:
// batches B·I/N up to B·(I+1)/N of the B = ⌈rows / batch⌉ batches of an unsharded run. The shards
// cover every row once, in order, differ in size by at most one batch, and each row is predicted
// in the very batch an unsharded run with the same batch size puts it in, so with the same
// threads the probabilities are bitwise the same.
std::pair<size_t, size_t> shard_rows(const Shard& shard, size_t rows, size_t batch);

// Where shard `shard` of a run writing `output` writes its part: beside it, as
// <stem>.part-<I>-of-<N><extension> (five digits each), e.g.
// predictions.part-00003-of-00016.parquet.
std::filesystem::path part_path(const std::filesystem::path& output, const Shard& shard);

// Whether `path` names parts (a folder, or a file name with * ? or [) rather than one file.
bool names_parts(const std::filesystem::path& path);

// The part files of one sharded run that `where` names (a folder holding them, or a glob such as
// out/predictions.part-*), in shard order. InputError when none are found, when they come from
// runs with different names or shard counts, or when a part is missing (naming which).
std::vector<std::filesystem::path> find_parts(const std::filesystem::path& where);

}  // namespace garmentnet
