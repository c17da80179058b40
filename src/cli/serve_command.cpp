// `garmentnet serve`: flags → ServeOptions.
#include "cli/commands.h"
#include "serve/server.h"

namespace garmentnet::cli {

void add_serve_command(CLI::App& app) {
  auto o = std::make_shared<ServeOptions>();
  auto poll_ms = std::make_shared<int64_t>(2000);
  auto max_wait_us = std::make_shared<int64_t>(2000);
  auto timeout_ms = std::make_shared<int64_t>(30000);
  auto max_body_mib = std::make_shared<double>(10);
  auto max_mib_in_flight = std::make_shared<double>(128);
  auto model_threads = std::make_shared<int>(0);
  CLI::App* command = app.add_subcommand(
      "serve",
      "Serve a model over HTTP: TF-Serving REST, KServe v2, an image route and a web page at /");
  auto* base = command->add_option(
      "--model-base-path", o->models.base_path,
      "Folder of integer version folders (DIR/1/model.gnm, ...); the highest is served "
      "and new ones are picked up while running");
  auto* file = command->add_option("--model", o->models.model_file,
                                   "Serve this one model file (as version 1)");
  base->excludes(file);
  command
      ->add_option("--serve-versions", o->models.served_versions,
                   "How many of the highest versions stay loaded; older ones answer at "
                   "/v1/models/NAME/versions/V")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  command->add_option("--model-name", o->model_name, "Name in the URLs: /v1/models/NAME")
      ->capture_default_str();
  command->add_option("--host", o->http.host, "Address to bind (0.0.0.0 for every interface)")
      ->capture_default_str();
  command->add_option("--port", o->http.port, "Port (0 = any free port)")->capture_default_str();
  command->add_option("--api-key", o->api_key,
                      "Require 'Authorization: Bearer KEY' on prediction routes");
  command->add_option("--max-batch-size", o->batching.max_batch_size, "Images per forward pass")
      ->capture_default_str();
  command
      ->add_option("--max-wait-us", *max_wait_us,
                   "How long a partial batch waits for requests already on their way (being "
                   "parsed and decoded); a lone request does not wait")
      ->capture_default_str();
  command->add_flag("--always-wait", o->batching.always_wait,
                    "Wait --max-wait-us even when no other request is on its way "
                    "(TF-Serving's batch_timeout)");
  command
      ->add_option("--max-queued-images", o->batching.max_queued_images,
                   "Images waiting for the model before requests get 429")
      ->capture_default_str();
  command
      ->add_option("--request-timeout-ms", *timeout_ms,
                   "Requests waiting longer for the model get 504")
      ->capture_default_str();
  command->add_option("--max-body-mib", *max_body_mib, "Larger request bodies get 413")
      ->capture_default_str();
  command
      ->add_option("--max-mib-in-flight", *max_mib_in_flight,
                   "Request bodies being read or handled, all connections together; a request "
                   "that does not fit gets 429")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  command->add_option("--max-instances", o->limits.max_instances, "Images per request")
      ->capture_default_str();
  command->add_option("--max-pixels", o->limits.image.max_pixels, "Pixels per image")
      ->capture_default_str();
  command
      ->add_option("--max-request-pixels", o->limits.max_request_pixels,
                   "Decoded pixels of all images of one request; more get 413")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  command
      ->add_option("--max-decoding-pixels", o->limits.max_decoding_pixels,
                   "Pixels being decoded by all requests together; a request that does not fit "
                   "gets 429")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  command
      ->add_option("--http-threads", o->http.threads,
                   "Connection worker threads: open keep-alive connections served at once")
      ->capture_default_str();
  command
      ->add_option("--max-connections", o->http.max_connections,
                   "Open connections in all; beyond, new clients wait in the listen backlog")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  command
      ->add_option("--max-connections-per-client", o->http.max_connections_per_client,
                   "Open connections from one client address; more get 503 (behind a load "
                   "balancer: at least its connection pool)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  command->add_option("--decode-threads", o->decode_threads, "Image decode workers (0 = all cores)")
      ->capture_default_str();
  command->add_option("--threads", *model_threads, "Model threads (0 = all cores)")
      ->capture_default_str();
  command->add_option("--poll-ms", *poll_ms, "How often the base path is checked for new versions")
      ->capture_default_str();
  command->callback([o, poll_ms, max_wait_us, timeout_ms, max_body_mib, max_mib_in_flight,
                     model_threads, command] {
    if (o->models.base_path.empty() && o->models.model_file.empty()) {
      throw CLI::RequiredError("--model-base-path or --model");
    }
    o->models.poll_interval = std::chrono::milliseconds(*poll_ms);
    o->batching.max_wait = std::chrono::microseconds(*max_wait_us);
    o->request_timeout = std::chrono::milliseconds(*timeout_ms);
    o->http.max_body_bytes = static_cast<size_t>(*max_body_mib * 1024 * 1024);
    o->limits.image.max_file_bytes = o->http.max_body_bytes;
    o->http.max_body_bytes_in_flight = static_cast<size_t>(*max_mib_in_flight * 1024 * 1024);
    o->models.warm_up_batch_size = o->batching.max_batch_size;
    use_model_threads(*model_threads);
    const StopSignals signals;
    serve_until_signal(*o, signals);
  });
}

}  // namespace garmentnet::cli
