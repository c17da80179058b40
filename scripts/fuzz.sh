#!/usr/bin/env bash
# Builds the fuzz/ targets with clang's libFuzzer + ASan/UBSan (only the torch-free sources they
# need, so they build in seconds) and runs each for SECONDS (default 60) from a seed corpus of
# valid input: request_fuzzer (request bodies: JSON, instances, base64, images) and
# http_framing_fuzzer (connection bytes: request heads, Content-Length, chunked bodies).
# Usage: scripts/fuzz.sh [SECONDS]. Exit status non-zero on a finding.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
out=build-fuzz
mkdir -p "$out/corpus" "$out/framing-corpus"
command -v clang++ >/dev/null || { echo "fuzz: clang++ is needed (Debian package clang)" >&2; exit 1; }
# shellcheck disable=SC2046
clang++ -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-omit-frame-pointer -Isrc \
  fuzz/request_fuzzer.cpp src/serve/request_parsing.cpp src/data/image.cpp src/core/atomic_file.cpp \
  $(pkg-config --cflags --libs opencv4) -lfmt -ljpeg -o "$out/request_fuzzer"
clang++ -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-omit-frame-pointer -Isrc \
  fuzz/http_framing_fuzzer.cpp src/serve/http_framing.cpp -lfmt -o "$out/http_framing_fuzzer"
printf 'POST /v1/models/garments:predict HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n{"a":GET /healthz HTTP/1.1\r\n\r\n' \
  >"$out/framing-corpus/length"
printf 'POST /v2/models/garments/infer HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4;x=1\r\nabcd\r\n0\r\n\r\n' \
  >"$out/framing-corpus/chunked"
# Seeds: each request shape the server accepts.
printf '%s' '{"instances": [[[[1, 2, 3], [4, 5, 6]], [[7, 8, 9], [10, 11, 12]]]]}' >"$out/corpus/array-int.json"
printf '%s' '{"signature_name": "serving_default", "instances": [[[[0.1, 0.2, 0.3]]]]}' >"$out/corpus/array-float.json"
printf '%s' '{"inputs": {"images": [[[[0.5, 0.5, 0.5]]]]}}' >"$out/corpus/columnar.json"
python3 - "$out/corpus" <<'PY'
import base64, json, sys, zlib, struct
def png(w, h):
    raw = b"".join(b"\x00" + bytes([(x * 40) % 256, 80, 160] * 1)[:3] * 1 for x in range(w) for _ in [0])
    rows = b"".join(b"\x00" + bytes([10, 20, 30]) * w for _ in range(h))
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + \
        chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
image = png(4, 3)
open(sys.argv[1] + "/b64.json", "w").write(json.dumps({"instances": [{"b64": base64.b64encode(image).decode()}]}))
open(sys.argv[1] + "/raw.png", "wb").write(image)
PY
status=0
ASAN_OPTIONS=detect_leaks=1 "$out/request_fuzzer" -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 \
  -print_final_stats=1 -artifact_prefix="$out/" "$out/corpus" 2>&1 | tail -n 25 || status=$?
ASAN_OPTIONS=detect_leaks=1 "$out/http_framing_fuzzer" -max_total_time="$seconds" -max_len=16384 \
  -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$out/framing-" "$out/framing-corpus" 2>&1 |
  tail -n 25 || status=$?
exit "$status"
