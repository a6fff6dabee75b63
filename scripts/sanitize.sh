#!/usr/bin/env bash
# The C++ unit tests under AddressSanitizer + UndefinedBehaviorSanitizer (gcc or clang), in a
# build folder of their own. Any sanitizer report fails its test.
#
#   bash scripts/sanitize.sh                    every suite
#   bash scripts/sanitize.sh test_results test_nni_channel    only these test programs (targets)
#   SAN_BUILD_DIR=build-asan  SAN_JOBS=2
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${SAN_BUILD_DIR:-build-asan}
flags="-fsanitize=address,undefined -fno-sanitize=vptr -fno-sanitize-recover=undefined"
flags+=" -fno-omit-frame-pointer"
# The commands too: test_proxy's Generate.ConcurrentCommandsBuildOnce runs `dataproxy generate`.
# DATAPROXY_HNSWLIB_SIMD=OFF: hnswlib's prefetch hints read past a list (plugin/src/proxy/CMakeLists.txt).
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DDATAPROXY_BUILD_BENCHMARKS=OFF -DDATAPROXY_BUILD_CLI=ON -DDATAPROXY_HNSWLIB_SIMD=OFF \
  -DCMAKE_CXX_FLAGS="$flags" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined"
targets=()
for t in "$@"; do targets+=(--target "$t"); done
cmake --build "$BUILD" -j "${SAN_JOBS:-2}" "${targets[@]}"

# Leak checking is on: LibTorch's global allocations stay reachable, and every suite exits clean
# (benchmarks/results/sanitize_*.md). Container-overflow checks stay off: LibTorch is not
# instrumented, so vectors it fills would carry no annotations if libstdc++'s were turned on.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_container_overflow=0:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export DATAPROXY_DATA_ROOT=${DATAPROXY_DATA_ROOT:-$PWD/data}
if [ $# -gt 0 ]; then
  # Only the named test programs, run as CTest would (it sets DATAPROXY_SOURCE_DIR).
  export DATAPROXY_SOURCE_DIR=$PWD
  status=0
  for t in "$@"; do
    for f in "$BUILD"/tests/cpp/*/"$t"; do
      echo "== $f"
      "$f" || status=1
    done
  done
  exit $status
fi
cd "$BUILD" && ctest --output-on-failure -j 2 --timeout 1800
