#!/usr/bin/env bash
# Installs what garmentnet needs and does nothing when everything is already there.
#  - Debian packages (LibTorch, OpenCV, cpp-httplib, ...): installed with apt-get when root,
#    otherwise the exact install line is printed and the script stops.
#  - DuckDB's C library 1.4.4, from two pinned npm packages, checked against their integrity
#    hashes and unpacked into third_party/duckdb/{include,lib} (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake ccache pkg-config zlib1g-dev
  libtorch-dev libgloo-dev libopenblas0-pthread
  libopencv-dev libjpeg62-turbo-dev libgoogle-perftools-dev
  libcpp-httplib-dev nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev prometheus-cpp-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  gnuplot-nox dataset-fashion-mnist
  python3-torch python3-torchvision python3-numpy python3-pil
  protobuf-compiler python3-protobuf python3-crcmod
  openssl
  chromium wrk python3-requests
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup-deps: missing Debian packages. Run as root:" >&2
    echo "  apt-get update && apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "setup-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}"
fi

# DuckDB C API, pinned. npm is needed only to fetch it (Debian's nodejs package ships npm
# on some machines, the separate npm package on others).
if ! command -v npm >/dev/null; then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup-deps: npm is missing. Run as root: apt-get install -y npm" >&2
    exit 1
  fi
  apt-get install -y -qq npm
fi

duckdb_version=1.4.4
header_pkg="duckdb@${duckdb_version}"
header_sri="sha512-hEJJ5hyVF0VLj3dmOLpsWrQR0b3d4Ykqtygm6iUXjHJDDnSqg/USKxcb5qvNrOhFYPgktayU6dXCtgPqcmmpog=="
lib_pkg="@duckdb/node-bindings-linux-x64@${duckdb_version}-r.4"
lib_sri="sha512-jBTL/WvfwxLToFa/pVHfT6elMtltJGnc3wSuxZD9OfMltit9YUdVFS37vBFQzXMT1Z8OWjtSjMh+zPKxOwHLHA=="
dest=third_party/duckdb
stamp="$dest/.installed-${duckdb_version}"

if [[ ! -f "$stamp" ]]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  fetch() { # $1 = package spec, $2 = expected SRI; prints the tarball path
    local name
    name=$(cd "$tmp" && npm pack --silent "$1")
    local got
    got="sha512-$(openssl dgst -sha512 -binary "$tmp/$name" | base64 -w0)"
    if [[ "$got" != "$2" ]]; then
      echo "setup-deps: integrity check failed for $1 (got $got, expected $2)" >&2
      exit 1
    fi
    echo "$tmp/$name"
  }
  echo "setup-deps: fetching DuckDB ${duckdb_version} C library"
  header_tgz=$(fetch "$header_pkg" "$header_sri")
  lib_tgz=$(fetch "$lib_pkg" "$lib_sri")
  rm -rf "$dest"
  mkdir -p "$dest/include" "$dest/lib"
  tar -xzf "$header_tgz" -C "$tmp" package/src/duckdb/src/include/duckdb.h
  mv "$tmp/package/src/duckdb/src/include/duckdb.h" "$dest/include/"
  rm -rf "$tmp/package"
  tar -xzf "$lib_tgz" -C "$tmp" package/libduckdb.so
  mv "$tmp/package/libduckdb.so" "$dest/lib/"
  touch "$stamp"
fi
echo "setup-deps: all dependencies present"
