#include "train/mlflow_tracking.h"

#include <httplib.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <random>

#include "core/atomic_file.h"
#include "core/error.h"

namespace garmentnet {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string environment(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? std::string() : std::string(value);
}

std::string percent_encoded(std::string_view text) {
  std::string out;
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (std::isalnum(byte) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += c;
    } else {
      out += fmt::format("%{:02X}", byte);
    }
  }
  return out;
}

// Each segment of an artifact path percent-encoded, the slashes kept.
std::string encoded_path(std::string_view path) {
  std::string out;
  size_t start = 0;
  while (start <= path.size()) {
    const size_t slash = std::min(path.find('/', start), path.size());
    if (!out.empty()) out += '/';
    out += percent_encoded(path.substr(start, slash - start));
    start = slash + 1;
  }
  return out;
}

// ---- REST: a tracking server ------------------------------------------------------------------

class RestStore final : public MlflowStore {
 public:
  explicit RestStore(const MlflowSettings& settings) : uri_(settings.uri) {
    // http://host[:port][/prefix]: the client takes scheme, host and port; the prefix goes before
    // every path (a server behind a reverse proxy at a sub-path).
    const size_t path_start = uri_.find('/', uri_.find("://") + 3);
    const std::string origin = uri_.substr(0, path_start);
    if (path_start != std::string::npos) prefix_ = uri_.substr(path_start);
    while (!prefix_.empty() && prefix_.back() == '/') prefix_.pop_back();
    client_ = std::make_unique<httplib::Client>(origin);
    client_->set_connection_timeout(std::min(settings.connect_timeout, settings.request_timeout));
    client_->set_read_timeout(settings.request_timeout);
    client_->set_write_timeout(settings.request_timeout);
    if (!settings.ca_certificates.empty()) client_->set_ca_cert_path(settings.ca_certificates);
    client_->enable_server_certificate_verification(!settings.insecure_tls);
    if (!settings.token.empty()) {
      client_->set_bearer_token_auth(settings.token);
    } else if (!settings.username.empty()) {
      client_->set_basic_auth(settings.username, settings.password);
    }
  }

  // httplib's stop() shuts the socket of a request in progress down (the one thing it may do
  // from another thread), so the request fails at once.
  void interrupt() override { client_->stop(); }

  std::string apply(const nlohmann::json& record, const std::string& run_id) override {
    const std::string kind = record.at("kind");
    if (kind == "start") return start_run(record);
    if (run_id.empty()) throw MlflowRefused("a record for a run that was never created");
    if (kind == "batch") {
      nlohmann::json body = record;
      body.erase("kind");
      body["run_id"] = run_id;
      expect_ok(post("runs/log-batch", body), "log-batch");
    } else if (kind == "artifact") {
      upload(run_id, record.at("file").get<std::string>(), record.at("path").get<std::string>());
    } else if (kind == "end") {
      expect_ok(post("runs/update", {{"run_id", run_id},
                                     {"status", record.at("status")},
                                     {"end_time", record.at("end_time")}}),
                "runs/update");
    } else {
      throw MlflowRefused("unknown record kind " + kind);
    }
    return run_id;
  }

 private:
  struct Answer {
    int status = 0;
    nlohmann::json body;
  };

  Answer answer_of(const httplib::Result& result, const std::string& what) const {
    if (result.error() == httplib::Error::SSLServerVerification) {
      throw MlflowUnavailable(fmt::format(
          "{}'s TLS certificate is not trusted (set MLFLOW_TRACKING_SERVER_CERT_PATH to a file "
          "of its CA's certificates, or MLFLOW_TRACKING_INSECURE_TLS=true to skip the check)",
          uri_));
    }
    if (!result) {
      throw MlflowUnavailable(fmt::format("{} unreachable ({}) for {}", uri_,
                                          httplib::to_string(result.error()), what));
    }
    Answer answer{.status = result->status,
                  .body = nlohmann::json::parse(result->body, nullptr, false)};
    if (answer.status == 429 || answer.status >= 500) {
      throw MlflowUnavailable(fmt::format("{} answered {} to {}", uri_, answer.status, what));
    }
    return answer;
  }

  // MlflowRefused with the server's own message unless `answer` is a success.
  static void expect_ok(const Answer& answer, const std::string& what) {
    if (answer.status / 100 == 2) return;
    const std::string message = answer.body.is_object()
                                    ? answer.body.value("message", answer.body.dump())
                                    : std::string("no message");
    throw MlflowRefused(fmt::format("{} refused with {}: {}", what, answer.status, message));
  }

  Answer get(const std::string& path) {
    return answer_of(client_->Get(prefix_ + "/api/2.0/mlflow/" + path), path);
  }
  Answer post(const std::string& path, const nlohmann::json& body) {
    return answer_of(
        client_->Post(prefix_ + "/api/2.0/mlflow/" + path, body.dump(), "application/json"), path);
  }

  std::string start_run(const nlohmann::json& record) {
    const std::string name = record.at("experiment");
    std::string experiment_id;
    Answer found = get("experiments/get-by-name?experiment_name=" + percent_encoded(name));
    if (found.status == 404) {
      const Answer created = post("experiments/create", {{"name", name}});
      // Another client may have created it meanwhile.
      if (created.status / 100 == 2) {
        experiment_id = created.body.at("experiment_id").get<std::string>();
      } else {
        found = get("experiments/get-by-name?experiment_name=" + percent_encoded(name));
      }
    }
    if (experiment_id.empty()) {
      expect_ok(found, "experiments/get-by-name");
      experiment_id = found.body.at("experiment").at("experiment_id").get<std::string>();
    }
    const Answer run = post("runs/create", {{"experiment_id", experiment_id},
                                            {"run_name", record.at("run_name")},
                                            {"start_time", record.at("start_time")},
                                            {"tags", record.at("tags")}});
    expect_ok(run, "runs/create");
    const nlohmann::json& info = run.body.at("run").at("info");
    artifact_uri_ = info.value("artifact_uri", "");
    return info.at("run_id").get<std::string>();
  }

  void upload(const std::string& run_id, const fs::path& file, const std::string& path) {
    if (artifact_uri_.empty()) {
      const Answer run = get("runs/get?run_id=" + percent_encoded(run_id));
      expect_ok(run, "runs/get");
      artifact_uri_ = run.body.at("run").at("info").value("artifact_uri", "");
    }
    // The server's artifact proxy: "mlflow-artifacts:/<where>" (or with a host after "//").
    constexpr std::string_view kProxy = "mlflow-artifacts:";
    if (!artifact_uri_.starts_with(kProxy)) {
      throw MlflowRefused(fmt::format(
          "the server keeps this run's artifacts at {}, which garmentnet cannot write; start "
          "`mlflow server` with artifact proxying (its default since MLflow 2.0)",
          artifact_uri_));
    }
    std::string root = artifact_uri_.substr(kProxy.size());
    if (root.starts_with("//")) root = root.substr(std::min(root.find('/', 2), root.size()));
    while (root.starts_with("/")) root.erase(0, 1);
    const std::string target = fmt::format("{}/api/2.0/mlflow-artifacts/artifacts/{}/{}", prefix_,
                                           encoded_path(root), encoded_path(path));
    std::error_code error;
    if (!fs::exists(file, error)) throw MlflowRefused(file.string() + " no longer exists");
    const std::string bytes = read_file(file);
    expect_ok(
        answer_of(client_->Put(target, bytes, "application/octet-stream"), "artifact " + path),
        "artifact upload of " + path);
  }

  std::string uri_;
  std::string prefix_;
  std::unique_ptr<httplib::Client> client_;
  std::string artifact_uri_;  // of the run started here
};

// ---- MLflow's file store: mlruns/<experiment>/<run>/... ---------------------------------------

// A YAML scalar: a JSON string is a valid double-quoted YAML string.
std::string yaml_string(const std::string& text) { return nlohmann::json(text).dump(); }

class FileStore final : public MlflowStore {
 public:
  explicit FileStore(fs::path root) : root_(fs::absolute(std::move(root)).lexically_normal()) {}

  std::string apply(const nlohmann::json& record, const std::string& run_id) override {
    const std::string kind = record.at("kind");
    if (kind == "start") return start_run(record);
    const fs::path run = run_folder(run_id);
    if (kind == "batch") {
      for (const nlohmann::json& metric : record.value("metrics", nlohmann::json::array())) {
        const fs::path file = run / "metrics" / metric.at("key").get<std::string>();
        fs::create_directories(file.parent_path());
        std::ofstream(file, std::ios::app)
            << metric.at("timestamp").get<int64_t>() << ' ' << metric.at("value").get<double>()
            << ' ' << metric.at("step").get<int64_t>() << '\n';
      }
      write_values(run / "params", record.value("params", nlohmann::json::array()));
      write_values(run / "tags", record.value("tags", nlohmann::json::array()));
    } else if (kind == "artifact") {
      const fs::path target = run / "artifacts" / record.at("path").get<std::string>();
      fs::create_directories(target.parent_path());
      fs::copy_file(record.at("file").get<std::string>(), target,
                    fs::copy_options::overwrite_existing);
    } else if (kind == "end") {
      constexpr std::pair<std::string_view, int> kStatuses[] = {
          {"FINISHED", 3}, {"FAILED", 4}, {"KILLED", 5}};
      int status = 4;
      for (const auto& [name, code] : kStatuses)
        if (record.at("status") == name) status = code;
      std::string meta = read_file(run / "meta.yaml");
      replace_line(meta,
                   "end_time:", fmt::format("end_time: {}", record.at("end_time").get<int64_t>()));
      replace_line(meta, "status:", fmt::format("status: {}", status));
      write_file_atomically(run / "meta.yaml", meta);
    }
    return run_id;
  }

 private:
  static void replace_line(std::string& text, std::string_view key, const std::string& line) {
    const size_t at = text.find("\n" + std::string(key));
    if (at == std::string::npos) return;
    text.replace(at + 1, text.find('\n', at + 1) - at - 1, line);
  }

  static void write_values(const fs::path& folder, const nlohmann::json& entries) {
    for (const nlohmann::json& entry : entries) {
      const fs::path file = folder / entry.at("key").get<std::string>();
      fs::create_directories(file.parent_path());
      write_file_atomically(file, entry.at("value").get<std::string>());
    }
  }

  // The id of the experiment named `name`, created if missing ("0" is MLflow's "Default").
  std::string experiment_id(const std::string& name) {
    const int64_t created = mlflow_timestamp_ms();
    if (!fs::exists(root_ / "0" / "meta.yaml")) write_experiment("0", "Default", created);
    int64_t largest = 0;
    for (const auto& entry : fs::directory_iterator(root_)) {
      const fs::path meta = entry.path() / "meta.yaml";
      if (!fs::exists(meta)) continue;
      if (read_file(meta).find("\nname: " + yaml_string(name) + "\n") != std::string::npos)
        return entry.path().filename().string();
      largest = std::max<int64_t>(largest, std::atoll(entry.path().filename().c_str()));
    }
    const std::string id = std::to_string(largest + 1);
    write_experiment(id, name, created);
    return id;
  }

  void write_experiment(const std::string& id, const std::string& name, int64_t created) {
    fs::create_directories(root_ / id);
    write_file_atomically(
        root_ / id / "meta.yaml",
        fmt::format("artifact_location: file://{}\ncreation_time: {}\n"
                    "experiment_id: '{}'\nlast_update_time: {}\n"
                    "lifecycle_stage: active\nname: {}\n",
                    (root_ / id).string(), created, id, created, yaml_string(name)));
  }

  std::string start_run(const nlohmann::json& record) {
    const std::string experiment = experiment_id(record.at("experiment"));
    std::random_device random;
    const std::string run_id =
        fmt::format("{:08x}{:08x}{:08x}{:08x}", random(), random(), random(), random());
    const fs::path run = root_ / experiment / run_id;
    fs::create_directories(run / "artifacts");
    const std::string user = environment("USER").empty() ? "unknown" : environment("USER");
    write_file_atomically(
        run / "meta.yaml",
        fmt::format("artifact_uri: file://{}\nend_time: null\nentry_point_name: ''\n"
                    "experiment_id: '{}'\nlifecycle_stage: active\nrun_id: {}\nrun_name: {}\n"
                    "run_uuid: {}\nsource_name: ''\nsource_type: 4\nsource_version: ''\n"
                    "start_time: {}\nstatus: 1\ntags: []\nuser_id: {}\n",
                    (run / "artifacts").string(), experiment, run_id,
                    yaml_string(record.at("run_name")), run_id,
                    record.at("start_time").get<int64_t>(), yaml_string(user)));
    write_values(run / "tags", record.at("tags"));
    return run_id;
  }

  fs::path run_folder(const std::string& run_id) const {
    if (!run_id.empty()) {
      for (const auto& entry : fs::directory_iterator(root_)) {
        if (fs::exists(entry.path() / run_id / "meta.yaml")) return entry.path() / run_id;
      }
    }
    throw MlflowRefused(fmt::format("no run {} in {}", run_id, root_.string()));
  }

  fs::path root_;
};

// Applies `record` with up to `attempts` tries, waiting 0.5 s, 1 s, 2 s, ... between them while
// the store is unavailable. True when applied; false when still unavailable. MlflowRefused
// passes through.
bool apply_with_retries(MlflowStore& store, const nlohmann::json& record, std::string& run_id,
                        int attempts) {
  auto wait = 500ms;
  for (int attempt = 1;; ++attempt) {
    try {
      run_id = store.apply(record, run_id);
      return true;
    } catch (const MlflowUnavailable& error) {
      if (attempt == attempts) {
        spdlog::warn("MLflow: {}", error.what());
        return false;
      }
      std::this_thread::sleep_for(wait);
      wait *= 2;
    }
  }
}

}  // namespace

MlflowSettings mlflow_settings_from(const std::string& uri_flag, const std::string& experiment_flag,
                                    const std::string& run_name) {
  MlflowSettings settings;
  settings.uri = uri_flag.empty() ? environment("MLFLOW_TRACKING_URI") : uri_flag;
  settings.experiment =
      experiment_flag.empty() ? environment("MLFLOW_EXPERIMENT_NAME") : experiment_flag;
  if (settings.experiment.empty()) settings.experiment = "Default";
  settings.run_name = run_name;
  settings.username = environment("MLFLOW_TRACKING_USERNAME");
  settings.password = environment("MLFLOW_TRACKING_PASSWORD");
  settings.token = environment("MLFLOW_TRACKING_TOKEN");
  settings.ca_certificates = environment("MLFLOW_TRACKING_SERVER_CERT_PATH");
  settings.insecure_tls = environment("MLFLOW_TRACKING_INSECURE_TLS") == "true";
  return settings;
}

std::unique_ptr<MlflowStore> open_mlflow_store(const MlflowSettings& settings) {
  const std::string& uri = settings.uri;
  if (uri.starts_with("http://") || uri.starts_with("https://"))
    return std::make_unique<RestStore>(settings);
  if (uri.starts_with("file://")) return std::make_unique<FileStore>(uri.substr(7));
  if (uri.starts_with("file:")) return std::make_unique<FileStore>(uri.substr(5));
  if (uri.find("://") != std::string::npos || uri.starts_with("databricks")) {
    fail(
        "MLflow tracking URI {} is not supported: use http(s)://HOST:PORT of a tracking server, "
        "file:PATH or a folder",
        uri);
  }
  return std::make_unique<FileStore>(uri);
}

int64_t mlflow_timestamp_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

fs::path mlflow_pending_file(const fs::path& run_dir) { return run_dir / "mlflow-pending.json"; }

MlflowRun::MlflowRun(const MlflowSettings& settings, fs::path pending_file)
    : settings_(settings),
      pending_file_(std::move(pending_file)),
      store_(open_mlflow_store(settings)),
      sender_([this] { send_in_background(); }) {}

MlflowRun::~MlflowRun() {
  try {
    if (!finished_) finish("FAILED");
  } catch (const std::exception& error) {
    spdlog::warn("MLflow: {}", error.what());
  }
}

void MlflowRun::add(nlohmann::json record) {
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(record));
  }
  changed_.notify_all();
}

void MlflowRun::send_in_background() {
  std::unique_lock lock(mutex_);
  auto backoff = 250ms;
  bool warned = false;
  for (;;) {
    changed_.wait(lock, [this] { return !queue_.empty() || finished_; });
    if (queue_.empty() || finished_) return;
    const nlohmann::json record = queue_.front();
    const std::string run_id = run_id_;
    in_flight_ = true;
    lock.unlock();
    std::string applied_to;
    std::string refusal;
    std::string unavailable;
    try {
      applied_to = store_->apply(record, run_id);
    } catch (const MlflowUnavailable& error) {
      unavailable = error.what();
    } catch (const std::exception& error) {
      refusal = error.what();
    }
    lock.lock();
    in_flight_ = false;
    if (unavailable.empty()) {
      queue_.pop_front();
      backoff = 250ms;
      if (refusal.empty()) {
        run_id_ = applied_to;
        if (warned) spdlog::info("MLflow: {} reachable again", settings_.uri);
        warned = false;
      } else if (record.at("kind") == "start") {
        spdlog::warn("MLflow: the run could not be created, tracking is off for it: {}", refusal);
        queue_.clear();
      } else {
        spdlog::warn("MLflow: a {} record was refused and is dropped: {}",
                     record.at("kind").get<std::string>(), refusal);
      }
      changed_.notify_all();
      continue;
    }
    if (!warned) {
      spdlog::warn(
          "MLflow: {}; training goes on, and its records are kept and sent when the server "
          "answers again",
          unavailable);
      warned = true;
    }
    changed_.notify_all();
    if (changed_.wait_for(lock, backoff, [this] { return finished_; })) return;
    backoff = std::min<std::chrono::milliseconds>(backoff * 2, 10s);
  }
}

void MlflowRun::finish(const std::string& status) {
  std::unique_lock lock(mutex_);
  if (finished_) return;
  queue_.push_back({{"kind", "end"}, {"status", status}, {"end_time", mlflow_timestamp_ms()}});
  changed_.notify_all();
  changed_.wait_for(lock, settings_.final_wait, [this] { return queue_.empty() && !in_flight_; });
  finished_ = true;
  changed_.notify_all();
  // A request to a server that does not answer is cut short, so the run ends after final_wait
  // rather than after the request's own timeout. Repeated: a request may be between connecting
  // and sending when it is first cut.
  while (in_flight_) {
    store_->interrupt();
    changed_.wait_for(lock, 100ms, [this] { return !in_flight_; });
  }
  lock.unlock();
  sender_.join();
  if (queue_.empty()) return;
  nlohmann::json pending = {
      {"uri", settings_.uri},
      {"run_id", run_id_},
      {"records", nlohmann::json(std::vector<nlohmann::json>(queue_.begin(), queue_.end()))}};
  write_file_atomically(pending_file_, pending.dump(2));
  spdlog::warn(
      "MLflow: {} record(s) of this run could not be sent to {}; they are kept in {}: send them "
      "with `garmentnet runs push {}`",
      queue_.size(), settings_.uri, pending_file_.string(), pending_file_.parent_path().string());
}

size_t push_pending_records(const fs::path& run_dir, const std::string& uri) {
  const fs::path file = mlflow_pending_file(run_dir);
  if (!fs::exists(file))
    fail("{} has no MLflow records waiting to be sent (no {})", run_dir.string(),
         file.filename().string());
  nlohmann::json pending = nlohmann::json::parse(read_file(file), nullptr, false);
  if (!pending.is_object() || !pending.contains("records") || !pending["records"].is_array())
    fail("{} is not a pending-records file of garmentnet; it cannot be replayed", file.string());
  MlflowSettings settings =
      mlflow_settings_from(uri.empty() ? pending.value("uri", "") : uri, "", "");
  const std::unique_ptr<MlflowStore> store = open_mlflow_store(settings);
  std::string run_id = pending.value("run_id", "");
  nlohmann::json& records = pending["records"];
  size_t sent = 0;
  for (; sent < records.size(); ++sent) {
    try {
      if (!apply_with_retries(*store, records[sent], run_id, 4)) break;
    } catch (const MlflowRefused& error) {
      spdlog::warn("MLflow: a {} record was refused and is dropped: {}",
                   records[sent].value("kind", "?"), error.what());
    }
  }
  records.erase(records.begin(), records.begin() + static_cast<std::ptrdiff_t>(sent));
  if (records.empty()) {
    fs::remove(file);
    spdlog::info("MLflow: every record of {} sent to {} (run {})", run_dir.string(), settings.uri,
                 run_id);
    return 0;
  }
  pending["run_id"] = run_id;
  pending["uri"] = settings.uri;
  write_file_atomically(file, pending.dump(2));
  return records.size();
}

}  // namespace garmentnet
