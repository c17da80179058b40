// MLflow tracking against a stand-in tracking server that checks MLflow's REST contract
// (tests/python/fake_mlflow_server.py), and into MLflow's file-store layout.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/atomic_file.h"
#include "test_support.h"
#include "train/mlflow_tracking.h"

namespace garmentnet::testing {
namespace {

using Clock = std::chrono::steady_clock;

// The stand-in server, started in the background on a free port of 127.0.0.1.
class FakeMlflowServer {
 public:
  // With `tls`, it speaks https with a certificate for 127.0.0.1 (certificate() is its file).
  explicit FakeMlflowServer(int fail_first = 0, bool tls = false) : tls_(tls) {
    const auto port_file = dir_ / "port";
    std::string options = fmt::format("--fail-first {}", fail_first);
    if (tls) {
      const CommandResult made = run_shell(fmt::format(
          "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 -addext "
          "subjectAltName=IP:127.0.0.1 -keyout '{0}/key.pem' -out '{0}/cert.pem'",
          dir_.path().string()));
      EXPECT_EQ(made.exit_code, 0) << made.output;
      options += fmt::format(" --tls '{0}/cert.pem' '{0}/key.pem'", dir_.path().string());
    }
    const CommandResult started =
        run_shell(fmt::format("/usr/bin/python3 {}/tests/python/fake_mlflow_server.py '{}' {} "
                              ">/dev/null 2>&1 & echo $!",
                              GARMENTNET_SOURCE_DIR, port_file.string(), options));
    pid_ = std::stoi(started.output);
    const auto deadline = Clock::now() + std::chrono::seconds(20);
    while (!std::filesystem::exists(port_file) && Clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    port_ = std::stoi(read_file(port_file));
  }
  ~FakeMlflowServer() { ::kill(pid_, SIGKILL); }
  FakeMlflowServer(const FakeMlflowServer&) = delete;
  FakeMlflowServer& operator=(const FakeMlflowServer&) = delete;

  std::string uri() const { return fmt::format("http{}://127.0.0.1:{}", tls_ ? "s" : "", port_); }
  std::filesystem::path certificate() const { return dir_ / "cert.pem"; }
  nlohmann::json state() const {
    httplib::Client client(uri());
    client.enable_server_certificate_verification(false);
    const auto result = client.Get("/test/state");
    return result ? nlohmann::json::parse(result->body) : nlohmann::json();
  }

 private:
  TempDir dir_;
  bool tls_;
  int pid_ = 0;
  int port_ = 0;
};

// A port of 127.0.0.1 where nothing listens.
int closed_port() {
  const int socket = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(socket, reinterpret_cast<sockaddr*>(&address), sizeof address);
  socklen_t length = sizeof address;
  ::getsockname(socket, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(socket);
  return ntohs(address.sin_port);
}

std::string train_arguments(const std::filesystem::path& run, const std::string& tracking) {
  return fmt::format(
      "train --data '{}' --out '{}' --image-size 32 --epochs 2 --batch-size 32 --transfer scratch "
      "--warmup-epochs 0 --patience 0 --threads 2 --experiment garments-test {}",
      tiny_dataset().string(), run.string(), tracking);
}

// The one run the server holds, checked against the run folder's metrics.json.
void expect_complete_run(const nlohmann::json& state, const std::filesystem::path& run_dir,
                         bool with_report_and_model) {
  EXPECT_TRUE(state["violations"].empty()) << state["violations"].dump(2);
  ASSERT_EQ(state["experiments"].size(), 1u) << state.dump();
  EXPECT_EQ(state["experiments"].begin().value()["name"], "garments-test");
  ASSERT_EQ(state["runs"].size(), 1u);
  const nlohmann::json& run = state["runs"].begin().value();
  EXPECT_EQ(run["info"]["status"], "FINISHED");
  EXPECT_TRUE(run["info"].contains("end_time"));
  EXPECT_EQ(run["info"]["run_name"], run_dir.filename().string());
  EXPECT_EQ(run["params"]["epochs"], "2");
  EXPECT_EQ(run["params"]["backbone"], "small_cnn");
  EXPECT_EQ(run["tags"]["garmentnet.backbone"], "small_cnn");
  EXPECT_EQ(run["tags"]["garmentnet.transfer"], "scratch");
  EXPECT_EQ(run["tags"]["garmentnet.labels_crc32"].get<std::string>().size(), 8u);
  const nlohmann::json metrics = nlohmann::json::parse(read_file(run_dir / "metrics.json"));
  const nlohmann::json& top1 = run["metrics"]["validation/cc3/top1"];
  ASSERT_EQ(top1.size(), 2u) << run["metrics"].dump().substr(0, 400);
  for (size_t epoch = 0; epoch < 2; ++epoch) {
    EXPECT_EQ(top1[epoch][0], epoch + 1);
    EXPECT_DOUBLE_EQ(top1[epoch][1].get<double>(),
                     metrics[epoch]["val"]["heads"]["cc3"]["top1_accuracy"].get<double>());
  }
  for (const char* key : {"train/loss", "validation/tags/mAP", "validation/tags/f1/floral",
                          "speed/images_per_second", "schedule/lr_factor"}) {
    EXPECT_EQ(run["metrics"][key].size(), 2u) << key;
  }
  const std::string root =
      fmt::format("{}/{}/artifacts/", run["info"]["experiment_id"].get<std::string>(),
                  run["info"]["run_id"].get<std::string>());
  std::vector<std::string> files = {"metrics.json", "config.json"};
  if (with_report_and_model) {
    files.insert(files.end(), {"model_card.md", "report.html", "plots/loss.png", "model.gnm"});
  } else {
    EXPECT_FALSE(state["artifacts"].contains(root + "model.gnm"));
  }
  for (const std::string& file : files) {
    EXPECT_EQ(state["artifacts"][root + file], std::filesystem::file_size(run_dir / file)) << file;
  }
}

TEST(Mlflow, ATrackingServerGetsTheWholeRunEvenWhenItStartsSlowly) {
  FakeMlflowServer server(/*fail_first=*/4);  // answers 503, 429, 503, 429 first: retried
  TempDir dir;
  const CommandResult result =
      run_garmentnet(train_arguments(dir / "run", "--log-model --mlflow-uri " + server.uri()));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  const nlohmann::json state = server.state();
  EXPECT_EQ(state["refused_while_failing"], 4);
  expect_complete_run(state, dir / "run", /*with_report_and_model=*/true);
  EXPECT_FALSE(std::filesystem::exists(dir / "run/mlflow-pending.json"));
}

TEST(Mlflow, AServerThatIsDownNeitherStopsTrainingNorLosesTheRecords) {
  TempDir dir;
  const auto started = Clock::now();
  const CommandResult result = run_garmentnet(train_arguments(
      dir / "run",
      fmt::format("--no-report --mlflow-wait 1 --mlflow-uri http://127.0.0.1:{}", closed_port())));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_LT(Clock::now() - started, std::chrono::seconds(60));
  EXPECT_NE(result.output.find("training goes on"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("garmentnet runs push"), std::string::npos) << result.output;
  ASSERT_TRUE(std::filesystem::exists(dir / "run/mlflow-pending.json"));

  FakeMlflowServer server;
  const CommandResult push = run_garmentnet(
      fmt::format("runs push '{}' --mlflow-uri {}", (dir / "run").string(), server.uri()));
  ASSERT_EQ(push.exit_code, 0) << push.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "run/mlflow-pending.json"));
  expect_complete_run(server.state(), dir / "run", /*with_report_and_model=*/false);
  // Nothing is left to send.
  EXPECT_NE(run_garmentnet(fmt::format("runs push '{}'", (dir / "run").string())).exit_code, 0);
}

TEST(Mlflow, AnHttpsServerGetsTheRunWhenItsCertificateIsTrustedAndNothingWhenNot) {
  FakeMlflowServer server(/*fail_first=*/0, /*tls=*/true);
  TempDir dir;
  // Its self-made certificate is not one the system trusts: the records are kept, and the warning
  // says what to set.
  const CommandResult untrusted = run_garmentnet(train_arguments(
      dir / "untrusted", "--no-report --mlflow-wait 1 --mlflow-uri " + server.uri()));
  ASSERT_EQ(untrusted.exit_code, 0) << untrusted.output;
  EXPECT_NE(untrusted.output.find("certificate is not trusted"), std::string::npos)
      << untrusted.output;
  EXPECT_NE(untrusted.output.find("MLFLOW_TRACKING_SERVER_CERT_PATH"), std::string::npos);
  EXPECT_TRUE(std::filesystem::exists(dir / "untrusted/mlflow-pending.json"));
  EXPECT_TRUE(server.state()["runs"].empty());

  // Trusted through MLflow's own variable.
  const CommandResult trusted = run_shell(fmt::format(
      "MLFLOW_TRACKING_SERVER_CERT_PATH='{}' {} {}", server.certificate().string(),
      GARMENTNET_BINARY, train_arguments(dir / "run", "--no-report --mlflow-uri " + server.uri())));
  ASSERT_EQ(trusted.exit_code, 0) << trusted.output;
  expect_complete_run(server.state(), dir / "run", /*with_report_and_model=*/false);
}

TEST(Mlflow, AServerThatNeverAnswersHoldsTheEndOfARunOnlyForItsWait) {
  // A server whose socket listens but never reads or answers: connections complete in the
  // kernel's backlog, requests wait for their timeout.
  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::listen(listener, 16), 0);
  socklen_t length = sizeof address;
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length);
  TempDir dir;
  MlflowSettings settings{.uri = fmt::format("http://127.0.0.1:{}", ntohs(address.sin_port)),
                          .experiment = "garments-test",
                          .final_wait = std::chrono::milliseconds(1000),
                          .request_timeout = std::chrono::milliseconds(60000)};
  const auto started = Clock::now();
  {
    MlflowRun run(settings, mlflow_pending_file(dir.path()));
    run.add({{"kind", "start"},
             {"experiment", "garments-test"},
             {"run_name", "r"},
             {"start_time", mlflow_timestamp_ms()},
             {"tags", nlohmann::json::array()}});
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // its request is waiting
    run.finish("FINISHED");
  }
  // The final wait and a little, not the request's 60 s.
  EXPECT_LT(Clock::now() - started, std::chrono::seconds(10));
  const nlohmann::json pending = nlohmann::json::parse(read_file(mlflow_pending_file(dir.path())));
  ASSERT_EQ(pending["records"].size(), 2u) << pending.dump();
  EXPECT_EQ(pending["records"][0]["kind"], "start");
  EXPECT_EQ(pending["records"][1]["status"], "FINISHED");
  ::close(listener);
}

TEST(Mlflow, AFileUriWritesMlflowsFileStoreLayout) {
  TempDir dir;
  const auto store = dir / "mlruns";
  const CommandResult result = run_garmentnet(
      train_arguments(dir / "run", "--no-report --mlflow-uri file:" + store.string()));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(read_file(store / "0/meta.yaml").find("name: \"Default\""), std::string::npos);
  const std::string experiment = read_file(store / "1/meta.yaml");
  EXPECT_NE(experiment.find("name: \"garments-test\""), std::string::npos) << experiment;
  std::filesystem::path run;
  for (const auto& entry : std::filesystem::directory_iterator(store / "1"))
    if (entry.is_directory()) run = entry.path();
  ASSERT_FALSE(run.empty());
  const std::string meta = read_file(run / "meta.yaml");
  EXPECT_NE(meta.find("\nstatus: 3\n"), std::string::npos) << meta;  // FINISHED
  EXPECT_EQ(meta.find("end_time: null"), std::string::npos) << meta;
  EXPECT_EQ(read_file(run / "params/epochs"), "2");
  EXPECT_EQ(read_file(run / "tags/mlflow.runName"), "run");
  // Metric lines: "<timestamp ms> <value> <step>", one per epoch.
  const std::string top1 = read_file(run / "metrics/validation/cc3/top1");
  EXPECT_EQ(std::count(top1.begin(), top1.end(), '\n'), 2) << top1;
  EXPECT_NE(top1.find(" 2\n"), std::string::npos) << top1;
  EXPECT_EQ(read_file(run / "artifacts/metrics.json"), read_file(dir / "run/metrics.json"));
}

}  // namespace
}  // namespace garmentnet::testing
