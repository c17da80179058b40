// The served model and its versions. A base path holds integer version folders
// (DIR/<version>/model.gnm, or the one .gnm file inside); the `served_versions` highest versions
// that load are served, the highest one to requests that name no version. A watcher thread polls
// for new versions, loads and warms each up off the request path and swaps it in atomically; the
// oldest version beyond `served_versions` is then unloaded, and requests already holding it
// finish on it. A version that fails to load never replaces a good one; its error is kept for the
// status route.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "infer/predictor.h"

namespace garmentnet {

struct ModelRegistryOptions {
  std::filesystem::path base_path;                // folder of integer version folders, or
  std::filesystem::path model_file;               // one model file, served as version 1
  std::chrono::milliseconds poll_interval{2000};  // how often base_path is scanned for versions
  PredictorOptions predictor;                     // how each loaded model runs
  int warm_up_batch_size = 1;  // images of the warm-up run after loading; 0 = none
  int served_versions = 1;     // how many of the highest loadable versions stay loaded
};

struct LoadedModel {
  int64_t version = 0;
  std::shared_ptr<const Predictor> predictor;
  std::chrono::system_clock::time_point loaded_at;
};

// TF-Serving's version states (LOADING, AVAILABLE, END).
enum class VersionState { Loading, Available, End };
std::string to_string(VersionState state);

struct VersionStatus {
  int64_t version = 0;
  VersionState state = VersionState::Loading;
  std::string error;  // why it is not served ("" when fine)
};

class ModelRegistry {
 public:
  // Called after each load attempt (for metrics and logs), outside the registry's lock.
  using LoadObserver = std::function<void(int64_t version, bool loaded)>;

  // Checks that the base path / model file exists (InputError otherwise) but loads nothing yet.
  explicit ModelRegistry(const ModelRegistryOptions& options, LoadObserver observer = {});
  ~ModelRegistry();  // stops the watcher
  ModelRegistry(const ModelRegistry&) = delete;
  ModelRegistry& operator=(const ModelRegistry&) = delete;

  // The highest served version, or nullptr before any version has loaded.
  std::shared_ptr<const LoadedModel> current() const;
  // That served version, or nullptr when it is not loaded.
  std::shared_ptr<const LoadedModel> find(int64_t version) const;
  // The versions served now, highest first.
  std::vector<int64_t> served_versions() const;
  // Every version seen, highest first.
  std::vector<VersionStatus> statuses() const;

  // Scans once, loads the highest versions not loaded yet and unloads those beyond
  // served_versions (the watcher calls this).
  void poll();
  // Starts polling every poll_interval in a background thread (no-op for a single model file).
  void start_watching();
  void stop_watching();

 private:
  // A file's identity: a version that failed is retried only when its file changes.
  struct FileStamp {
    std::filesystem::path path;
    std::filesystem::file_time_type modified;
    uintmax_t size = 0;
    bool operator==(const FileStamp&) const = default;
  };
  struct Candidate {
    int64_t version = 0;
    std::filesystem::path file;  // empty when the folder has no usable model file
    std::string problem;         // why `file` is empty
  };
  std::vector<Candidate> scan() const;
  bool try_load(int64_t version, const std::filesystem::path& file);
  void set_status(int64_t version, VersionState state, std::string error);
  void record_unusable(const Candidate& candidate);

  ModelRegistryOptions options_;
  LoadObserver observer_;
  mutable std::mutex mutex_;  // guards loaded_, statuses_, failed_
  std::map<int64_t, std::shared_ptr<const LoadedModel>> loaded_;  // served versions by number
  std::map<int64_t, VersionStatus> statuses_;
  std::map<int64_t, FileStamp> failed_;
  std::mutex poll_mutex_;  // one scan/load at a time
  std::mutex watch_mutex_;
  std::condition_variable watch_wake_;
  bool watching_ = false;
  std::thread watcher_;
};

}  // namespace garmentnet
