// Experiment tracking in MLflow. A run's records (its start, parameters, metrics per epoch, tags,
// artifacts and final status) go to a tracking server over MLflow's REST API
// (/api/2.0/mlflow/..., artifacts through the server's proxy /api/2.0/mlflow-artifacts/...), or
// into MLflow's file-store layout (a file: URI or a plain folder, for `mlflow ui` on a folder).
// Sending never holds training up: records are queued and a background thread sends them in
// order, retrying with back-off while the server is down, slow or answering 429/5xx. When the run
// ends it waits a bounded time; what is still unsent is written to the run folder
// (mlflow-pending.json) for `garmentnet runs push`. Torch-free.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

namespace garmentnet {

struct MlflowSettings {
  std::string uri;         // http://host[:port][/prefix], file:PATH or a folder; "" = no tracking
  std::string experiment;  // created if missing
  std::string run_name;
  std::string username;  // basic auth
  std::string password;
  std::string token;            // bearer token (instead of basic auth)
  std::string ca_certificates;  // https: a file of trusted CA certificates; "" = the system's
  bool insecure_tls = false;    // https: no check of the server's certificate
  std::chrono::milliseconds final_wait{15000};       // at the end, for records still unsent
  std::chrono::milliseconds request_timeout{10000};  // one HTTP request
  std::chrono::milliseconds connect_timeout{3000};   // its connection, within request_timeout
};

// The settings of the flags, where given, else of MLflow's standard environment variables
// (MLFLOW_TRACKING_URI, MLFLOW_EXPERIMENT_NAME, MLFLOW_TRACKING_USERNAME / _PASSWORD,
// MLFLOW_TRACKING_TOKEN, MLFLOW_TRACKING_SERVER_CERT_PATH, MLFLOW_TRACKING_INSECURE_TLS). The
// experiment defaults to "Default", MLflow's own.
MlflowSettings mlflow_settings_from(const std::string& uri_flag, const std::string& experiment_flag,
                                    const std::string& run_name);

// A store refused a record for good (a 4xx other than 429: the record is wrong, or a permission).
class MlflowRefused : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
// A store could not be reached or answered 429/5xx: worth retrying.
class MlflowUnavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Where records are applied. Records are JSON objects with a "kind":
//   {"kind": "start", "experiment", "run_name", "start_time" (ms), "tags": [{key, value}]}
//   {"kind": "batch", "metrics": [{key, value, timestamp, step}], "params": [...], "tags": [...]}
//   {"kind": "artifact", "file": local path, "path": path in the run's artifacts}
//   {"kind": "end", "status": "FINISHED" | "FAILED" | "KILLED", "end_time" (ms)}
class MlflowStore {
 public:
  virtual ~MlflowStore() = default;
  // Applies `record` to run `run_id` ("" before the start); returns the run id (the new one for a
  // start). MlflowUnavailable or MlflowRefused when it was not applied.
  virtual std::string apply(const nlohmann::json& record, const std::string& run_id) = 0;
  // Makes an apply() in progress on another thread end now, as unavailable (a request to a server
  // that does not answer). Stores whose apply() never waits on the network do nothing.
  virtual void interrupt() {}
};

// The store `settings.uri` names; InputError for a URI of another kind (s3, databricks, ...).
std::unique_ptr<MlflowStore> open_mlflow_store(const MlflowSettings& settings);

// The records of one run, sent in order by a background thread.
class MlflowRun {
 public:
  // `pending_file` is where unsent records are kept when the run ends.
  MlflowRun(const MlflowSettings& settings, std::filesystem::path pending_file);
  // finish("FAILED") when finish() was not called (the run ended by an exception).
  ~MlflowRun();
  MlflowRun(const MlflowRun&) = delete;
  MlflowRun& operator=(const MlflowRun&) = delete;

  // Queues a record (never blocks on the store).
  void add(nlohmann::json record);
  // Queues the end record with `status`, waits up to settings.final_wait for the queue to empty,
  // cuts short a request still in progress, and writes what is left to the pending file (with a
  // warning naming `garmentnet runs push`).
  void finish(const std::string& status);

 private:
  void send_in_background();

  MlflowSettings settings_;
  std::filesystem::path pending_file_;
  std::unique_ptr<MlflowStore> store_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<nlohmann::json> queue_;
  std::string run_id_;
  bool in_flight_ = false;  // the front record is being applied
  bool finished_ = false;
  std::thread sender_;
};

// Applies the records kept in `run_dir`'s pending file to their store (or `uri` when given),
// retrying each a few times; rewrites the file with what is still unsent, or removes it. Returns
// how many records remain. InputError when there is no pending file.
size_t push_pending_records(const std::filesystem::path& run_dir, const std::string& uri);

// Milliseconds since the Unix epoch, MLflow's timestamps.
int64_t mlflow_timestamp_ms();

// The pending file of a run folder.
std::filesystem::path mlflow_pending_file(const std::filesystem::path& run_dir);

}  // namespace garmentnet
