#include "serve/model_registry.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>

#include "core/error.h"

namespace garmentnet {

namespace fs = std::filesystem;

std::string to_string(VersionState state) {
  switch (state) {
    case VersionState::Loading:
      return "LOADING";
    case VersionState::Available:
      return "AVAILABLE";
    case VersionState::End:
      return "END";
  }
  return "UNKNOWN";
}

namespace {

// "12" → 12; anything else (hidden folders, "tmp", "1a") is not a version.
std::optional<int64_t> parse_version(const std::string& name) {
  int64_t version = 0;
  const auto [end, error] = std::from_chars(name.data(), name.data() + name.size(), version);
  if (error != std::errc() || end != name.data() + name.size() || version < 0) return std::nullopt;
  return version;
}

}  // namespace

ModelRegistry::ModelRegistry(const ModelRegistryOptions& options, LoadObserver observer)
    : options_(options), observer_(std::move(observer)) {
  if (options_.model_file.empty() == options_.base_path.empty()) {
    fail("give either a model base path (folder of version folders) or one model file");
  }
  if (!options_.model_file.empty() && !fs::is_regular_file(options_.model_file)) {
    fail("model file {} does not exist", options_.model_file.string());
  }
  if (!options_.base_path.empty() && !fs::is_directory(options_.base_path)) {
    fail("model base path {} is not a folder; it should hold version folders like {}/1/model.gnm",
         options_.base_path.string(), options_.base_path.string());
  }
}

ModelRegistry::~ModelRegistry() { stop_watching(); }

std::shared_ptr<const LoadedModel> ModelRegistry::current() const {
  std::lock_guard lock(mutex_);
  return loaded_.empty() ? nullptr : loaded_.rbegin()->second;
}

std::shared_ptr<const LoadedModel> ModelRegistry::find(int64_t version) const {
  std::lock_guard lock(mutex_);
  const auto found = loaded_.find(version);
  return found == loaded_.end() ? nullptr : found->second;
}

std::vector<int64_t> ModelRegistry::served_versions() const {
  std::lock_guard lock(mutex_);
  std::vector<int64_t> out;
  for (auto it = loaded_.rbegin(); it != loaded_.rend(); ++it) out.push_back(it->first);
  return out;
}

std::vector<VersionStatus> ModelRegistry::statuses() const {
  std::lock_guard lock(mutex_);
  std::vector<VersionStatus> out;
  for (auto it = statuses_.rbegin(); it != statuses_.rend(); ++it) out.push_back(it->second);
  return out;
}

void ModelRegistry::set_status(int64_t version, VersionState state, std::string error) {
  std::lock_guard lock(mutex_);
  statuses_[version] = {.version = version, .state = state, .error = std::move(error)};
}

std::vector<ModelRegistry::Candidate> ModelRegistry::scan() const {
  std::vector<Candidate> out;
  if (!options_.model_file.empty())
    return {{.version = 1, .file = options_.model_file, .problem = {}}};
  std::error_code error;
  for (const fs::directory_entry& entry : fs::directory_iterator(options_.base_path, error)) {
    const auto version = parse_version(entry.path().filename().string());
    if (!version || !entry.is_directory(error)) continue;
    Candidate candidate{.version = *version, .file = {}, .problem = {}};
    if (fs::is_regular_file(entry.path() / "model.gnm", error)) {
      candidate.file = entry.path() / "model.gnm";
    } else {
      std::vector<fs::path> models;
      for (const fs::directory_entry& file : fs::directory_iterator(entry.path(), error)) {
        if (file.path().extension() == ".gnm" && file.is_regular_file(error))
          models.push_back(file.path());
      }
      if (models.size() == 1) {
        candidate.file = models.front();
      } else {
        candidate.problem = models.empty()
                                ? fmt::format("no .gnm model file in {}", entry.path().string())
                                : fmt::format("{} .gnm files in {}; keep one or name it model.gnm",
                                              models.size(), entry.path().string());
      }
    }
    out.push_back(std::move(candidate));
  }
  std::sort(out.begin(), out.end(),
            [](const Candidate& a, const Candidate& b) { return a.version > b.version; });
  return out;
}

bool ModelRegistry::try_load(int64_t version, const fs::path& file) {
  std::error_code error;
  const FileStamp stamp{.path = file,
                        .modified = fs::last_write_time(file, error),
                        .size = fs::file_size(file, error)};
  {
    std::lock_guard lock(mutex_);
    if (const auto failed = failed_.find(version);
        failed != failed_.end() && failed->second == stamp)
      return false;
  }
  set_status(version, VersionState::Loading, "");
  spdlog::info("loading model version {} from {}", version, file.string());
  try {
    auto predictor = std::make_shared<const Predictor>(file, options_.predictor);
    if (options_.warm_up_batch_size > 0) {
      // The first forward pass allocates and picks kernels; do it here, not in a user's request.
      const Preprocessing& pre = predictor->preprocessing();
      const cv::Mat grey(pre.height, pre.width, CV_8UC3, cv::Scalar(128, 128, 128));
      predictor->predict(
          std::vector<cv::Mat>(static_cast<size_t>(options_.warm_up_batch_size), grey));
    }
    auto loaded = std::make_shared<const LoadedModel>(
        LoadedModel{.version = version,
                    .predictor = std::move(predictor),
                    .loaded_at = std::chrono::system_clock::now()});
    {
      std::lock_guard lock(mutex_);
      loaded_[version] = std::move(loaded);
      failed_.erase(version);
      statuses_[version] = {.version = version, .state = VersionState::Available, .error = ""};
    }
    spdlog::info("serving model version {}", version);
    if (observer_) observer_(version, true);
    return true;
  } catch (const std::exception& e) {
    spdlog::error("model version {} failed to load: {}", version, e.what());
    {
      std::lock_guard lock(mutex_);
      failed_[version] = stamp;
      statuses_[version] = {.version = version, .state = VersionState::End, .error = e.what()};
    }
    if (observer_) observer_(version, false);
    return false;
  }
}

void ModelRegistry::record_unusable(const Candidate& candidate) {
  bool changed = false;
  {
    std::lock_guard lock(mutex_);
    VersionStatus& status = statuses_[candidate.version];
    changed = status.error != candidate.problem;
    status = {.version = candidate.version, .state = VersionState::End, .error = candidate.problem};
  }
  if (changed) spdlog::warn("model version {}: {}", candidate.version, candidate.problem);
}

void ModelRegistry::poll() {
  std::lock_guard poll_lock(poll_mutex_);
  std::vector<Candidate> candidates = scan();
  // A served version whose folder was removed stays served: removing files never unloads.
  for (const int64_t version : served_versions()) {
    if (std::none_of(candidates.begin(), candidates.end(),
                     [&](const Candidate& c) { return c.version == version; })) {
      candidates.push_back({.version = version, .file = {}, .problem = {}});
    }
  }
  std::sort(candidates.begin(), candidates.end(),
            [](const Candidate& a, const Candidate& b) { return a.version > b.version; });
  // Keep the highest versions that are loaded or load now, down to served_versions of them.
  const auto wanted = static_cast<size_t>(std::max(1, options_.served_versions));
  std::vector<int64_t> keep;
  for (const Candidate& candidate : candidates) {
    if (keep.size() == wanted) break;
    if (find(candidate.version)) {
      keep.push_back(candidate.version);
    } else if (candidate.file.empty()) {
      record_unusable(candidate);
    } else if (try_load(candidate.version, candidate.file)) {
      keep.push_back(candidate.version);
    }
  }
  std::vector<int64_t> unloaded;
  {
    std::lock_guard lock(mutex_);
    for (auto it = loaded_.begin(); it != loaded_.end();) {
      if (std::find(keep.begin(), keep.end(), it->first) != keep.end()) {
        ++it;
        continue;
      }
      // Requests and queued batches hold their own reference: they finish on this version.
      statuses_[it->first].state = VersionState::End;
      unloaded.push_back(it->first);
      it = loaded_.erase(it);
    }
  }
  for (const int64_t version : unloaded) {
    spdlog::info("unloading model version {} (serving {} version(s), newest {})", version,
                 keep.size(), keep.front());
  }
}

void ModelRegistry::start_watching() {
  std::lock_guard lock(watch_mutex_);
  if (watching_ || !options_.model_file.empty()) return;
  watching_ = true;
  watcher_ = std::thread([this] {
    std::unique_lock lock(watch_mutex_);
    while (!watch_wake_.wait_for(lock, options_.poll_interval, [this] { return !watching_; })) {
      lock.unlock();
      try {
        poll();
      } catch (const std::exception& e) {
        spdlog::error("scanning {} for model versions failed: {}", options_.base_path.string(),
                      e.what());
      }
      lock.lock();
    }
  });
}

void ModelRegistry::stop_watching() {
  {
    std::lock_guard lock(watch_mutex_);
    watching_ = false;
  }
  watch_wake_.notify_all();
  if (watcher_.joinable()) watcher_.join();
}

}  // namespace garmentnet
