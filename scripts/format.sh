#!/usr/bin/env bash
# Rewrites every tracked C++ file with clang-format, and the Python files with ruff.
set -euo pipefail
cd "$(dirname "$0")/.."
git ls-files '*.cpp' '*.h' | xargs -r clang-format -i
.venv/bin/ruff format plugin/python tests/python integration benchmarks scripts
