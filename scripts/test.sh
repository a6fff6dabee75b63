#!/usr/bin/env bash
# Runs every check: formatting and lint, the C++ suites (CTest), the Python suites (pytest).
# Expects scripts/setup.sh to have run.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
export DATAPROXY_BUILD_DIR=${DATAPROXY_BUILD_DIR:-$PWD/$BUILD_DIR}
status=0

echo "== format (clang-format)"
mapfile -t cxx < <(git ls-files '*.cpp' '*.h')
if [ "${#cxx[@]}" -gt 0 ]; then
  clang-format --dry-run --Werror "${cxx[@]}" || { echo "clang-format: run scripts/format.sh"; status=1; }
fi

echo "== lint (ruff)"
.venv/bin/ruff check plugin/python tests/python integration benchmarks scripts || status=1
.venv/bin/ruff format --check plugin/python tests/python integration benchmarks scripts || status=1

echo "== build"
cmake --build "$BUILD_DIR" -j "$(nproc)"

echo "== C++ tests (ctest)"
(cd "$BUILD_DIR" && ctest --output-on-failure -j 2 --timeout 900) || status=1

echo "== Python tests (pytest)"
.venv/bin/python -m pytest -q tests/python integration || status=1

exit $status
