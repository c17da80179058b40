"""A stand-in MLflow tracking server for the tests that checks MLflow's REST contract (the
endpoints garmentnet uses, their required fields and types, MLflow's batch limits) and keeps what
it was sent. Python's standard library only.

    fake_mlflow_server.py PORT_FILE [--fail-first N] [--tls CERT KEY]

Listens on 127.0.0.1 (a free port, written to PORT_FILE), answers 503 and 429 in turn to the
first N requests (a server that is starting, then overloaded), speaks https with --tls, and serves its state at GET /test/state. A request
that breaks the contract gets 400 with {"error_code": "INVALID_PARAMETER_VALUE", "message"} and
is listed under "violations" in the state, so the tests see it."""
import json
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlparse

API = "/api/2.0/mlflow/"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts/"
RUN_STATUSES = {"RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"}

lock = threading.Lock()
state = {"experiments": {}, "runs": {}, "artifacts": {}, "violations": [], "requests": 0,
         "refused_while_failing": 0}
fail_first = 0


class ContractError(Exception):
    pass


def require(condition, message):
    if not condition:
        raise ContractError(message)


def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def check_key_values(entries, what, limit):
    require(isinstance(entries, list), what + " must be a list")
    require(len(entries) <= limit, "more than %d %s in one batch" % (limit, what))
    for entry in entries:
        require(isinstance(entry, dict) and set(entry) == {"key", "value"},
                what + " entries have exactly key and value")
        require(isinstance(entry["key"], str) and entry["key"], what + " keys are non-empty text")
        require(isinstance(entry["value"], str), what + " values are text")
        require(len(entry["key"]) <= 250, what + " key longer than 250")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        length = int(self.headers.get("Content-Length", "0"))
        return self.rfile.read(length)

    def handle_any(self, method):
        global fail_first
        path = urlparse(self.path)
        raw = self.body() if method in ("POST", "PUT") else b""
        if path.path == "/test/state":
            with lock:
                return self.answer(200, state)
        with lock:
            state["requests"] += 1
            if fail_first > 0:
                # 503 and 429 in turn: a server starting, then one shedding load.
                fail_first -= 1
                state["refused_while_failing"] += 1
                if state["refused_while_failing"] % 2 == 1:
                    return self.answer(503, {"error_code": "TEMPORARILY_UNAVAILABLE",
                                             "message": "starting"})
                return self.answer(429, {"error_code": "REQUEST_LIMIT_EXCEEDED",
                                         "message": "too many requests"})
        try:
            with lock:
                status, body = self.route(method, path, raw)
        except ContractError as error:
            with lock:
                state["violations"].append("%s %s: %s" % (method, path.path, error))
            status, body = 400, {"error_code": "INVALID_PARAMETER_VALUE", "message": str(error)}
        self.answer(status, body)

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_PUT(self):
        self.handle_any("PUT")

    def route(self, method, path, raw):
        if method == "PUT" and path.path.startswith(ARTIFACTS):
            where = unquote(path.path[len(ARTIFACTS):])
            require(self.headers.get("Content-Type") == "application/octet-stream",
                    "artifact bodies are application/octet-stream")
            state["artifacts"][where] = len(raw)
            return 200, {}
        require(path.path.startswith(API), "unknown endpoint " + path.path)
        endpoint = path.path[len(API):]
        query = parse_qs(path.query)
        if method == "GET" and endpoint == "experiments/get-by-name":
            name = query.get("experiment_name", [""])[0]
            require(name, "experiment_name is required")
            for experiment in state["experiments"].values():
                if experiment["name"] == name:
                    return 200, {"experiment": experiment}
            return 404, {"error_code": "RESOURCE_DOES_NOT_EXIST",
                         "message": "Could not find experiment with name '%s'" % name}
        if method == "GET" and endpoint == "runs/get":
            run = state["runs"].get(query.get("run_id", [""])[0])
            require(run is not None, "unknown run_id")
            return 200, {"run": {"info": run["info"]}}
        require(method == "POST", "%s %s is not an MLflow endpoint" % (method, endpoint))
        require(self.headers.get("Content-Type", "").startswith("application/json"),
                "request bodies are application/json")
        body = json.loads(raw)
        if endpoint == "experiments/create":
            require(isinstance(body.get("name"), str) and body["name"], "name is required")
            require(all(e["name"] != body["name"] for e in state["experiments"].values()),
                    "experiment exists already")
            experiment_id = str(len(state["experiments"]) + 1)
            state["experiments"][experiment_id] = {
                "experiment_id": experiment_id, "name": body["name"],
                "lifecycle_stage": "active"}
            return 200, {"experiment_id": experiment_id}
        if endpoint == "runs/create":
            require(body.get("experiment_id") in state["experiments"], "unknown experiment_id")
            require(is_int(body.get("start_time")), "start_time is an integer (ms)")
            check_key_values(body.get("tags", []), "tags", 100)
            run_id = uuid.uuid4().hex
            info = {"run_id": run_id, "run_uuid": run_id, "experiment_id": body["experiment_id"],
                    "run_name": body.get("run_name", ""), "status": "RUNNING",
                    "start_time": body["start_time"], "lifecycle_stage": "active",
                    "artifact_uri": "mlflow-artifacts:/%s/%s/artifacts" % (
                        body["experiment_id"], run_id)}
            state["runs"][run_id] = {"info": info, "params": {}, "metrics": {},
                                     "tags": {t["key"]: t["value"] for t in body.get("tags", [])}}
            return 200, {"run": {"info": info, "data": {}}}
        if endpoint == "runs/log-batch":
            run = state["runs"].get(body.get("run_id"))
            require(run is not None, "unknown run_id")
            require(run["info"]["status"] == "RUNNING", "the run has ended")
            metrics = body.get("metrics", [])
            params = body.get("params", [])
            tags = body.get("tags", [])
            require(isinstance(metrics, list) and len(metrics) <= 1000,
                    "at most 1000 metrics in one batch")
            require(len(metrics) + len(params) + len(tags) <= 1000,
                    "at most 1000 metrics, params and tags in one batch")
            check_key_values(params, "params", 100)
            check_key_values(tags, "tags", 100)
            for metric in metrics:
                require(isinstance(metric.get("key"), str) and metric["key"], "metric key")
                require(isinstance(metric.get("value"), (int, float)), "metric value is a number")
                require(is_int(metric.get("timestamp")), "metric timestamp is an integer (ms)")
                require(is_int(metric.get("step", 0)), "metric step is an integer")
            for param in params:
                old = run["params"].get(param["key"])
                require(old is None or old == param["value"],
                        "param %s changed from %s to %s" % (param["key"], old, param["value"]))
                run["params"][param["key"]] = param["value"]
            for metric in metrics:
                run["metrics"].setdefault(metric["key"], []).append(
                    [metric.get("step", 0), metric["value"], metric["timestamp"]])
            for tag in tags:
                run["tags"][tag["key"]] = tag["value"]
            return 200, {}
        if endpoint == "runs/update":
            run = state["runs"].get(body.get("run_id"))
            require(run is not None, "unknown run_id")
            require(body.get("status") in RUN_STATUSES, "status is one of " + str(RUN_STATUSES))
            require(is_int(body.get("end_time")), "end_time is an integer (ms)")
            run["info"]["status"] = body["status"]
            run["info"]["end_time"] = body["end_time"]
            return 200, {"run_info": run["info"]}
        raise ContractError("unknown endpoint " + endpoint)


def main():
    global fail_first
    if "--fail-first" in sys.argv:
        fail_first = int(sys.argv[sys.argv.index("--fail-first") + 1])
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if "--tls" in sys.argv:
        import ssl
        at = sys.argv.index("--tls")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(sys.argv[at + 1], sys.argv[at + 2])
        server.socket = context.wrap_socket(server.socket, server_side=True)
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    import os
    os.rename(sys.argv[1] + ".tmp", sys.argv[1])
    server.serve_forever()


if __name__ == "__main__":
    main()
