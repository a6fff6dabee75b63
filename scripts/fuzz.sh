#!/usr/bin/env bash
# Builds the libFuzzer harnesses (fuzz/, clang, ASan + UBSan in every library they reach) and runs
# each one from its committed seed corpus (fuzz/corpus/<harness>/).
#
#   bash scripts/fuzz.sh            long run: FUZZ_RUNS executions per harness (default 1000000);
#                                   the outcome goes to benchmarks/results/fuzz_<date>_<commit>.md
#   bash scripts/fuzz.sh --short    a quick pass (2000 executions each), as scripts/test.sh runs it
#   FUZZ_BUILD_DIR=build-fuzz       build folder
#   FUZZ_JOBS=2                     build jobs
#   FUZZ_ONLY="fuzz_nni fuzz_space" run only these harnesses
#
# The build configures -DDATAPROXY_WITH_TORCH=OFF: every parser the harnesses reach is torch-free
# (the data readers through their byte layer, plugin/src/data/raw.h), a few minutes on 2 cores.
#
# A crash leaves its input in $FUZZ_BUILD_DIR/crashes/<harness>-crash-*; fix the cause, then add the
# input to fuzz/corpus/<harness>/ so that every later run replays it. Exit status 1 if any crashed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${FUZZ_BUILD_DIR:-build-fuzz}
MODE=long
RUNS=${FUZZ_RUNS:-1000000}
if [ "${1:-}" = "--short" ]; then
  MODE=short
  RUNS=2000
fi
HARNESSES=(fuzz_idx fuzz_cifar fuzz_png fuzz_space fuzz_manifest fuzz_results fuzz_nni)
if [ -n "${FUZZ_ONLY:-}" ]; then read -r -a HARNESSES <<<"$FUZZ_ONLY"; fi

for tool in clang clang++; do
  command -v "$tool" >/dev/null || { echo "fuzz.sh: $tool not found: apt-get install clang libclang-rt-14-dev libfuzzer-14-dev"; exit 1; }
done
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  CC=clang CXX=clang++ cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DDATAPROXY_BUILD_FUZZERS=ON -DDATAPROXY_BUILD_TESTS=OFF -DDATAPROXY_BUILD_BENCHMARKS=OFF \
    -DDATAPROXY_WITH_TORCH=OFF
fi
cmake --build "$BUILD" -j "${FUZZ_JOBS:-2}" --target "${HARNESSES[@]}"

# No LibTorch here, so ASan's leak and container checks stay on. allocator_may_return_null: an
# allocation beyond ASan's limit surfaces as std::bad_alloc, which escapes the harness: a crash.
export ASAN_OPTIONS=${ASAN_OPTIONS:-allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
mkdir -p "$BUILD/crashes" "$BUILD/corpus"
status=0
rows=()
for h in "${HARNESSES[@]}"; do
  work="$BUILD/corpus/$h"
  mkdir -p "$work"
  log="$BUILD/$h.log"
  start=$(date +%s)
  set +e
  # The first folder collects what the run finds; the committed seeds are only read.
  "$BUILD/fuzz/$h" -runs="$RUNS" -max_len=65536 -timeout=30 -rss_limit_mb=4096 \
    -print_final_stats=1 -artifact_prefix="$BUILD/crashes/$h-" "$work" "fuzz/corpus/$h" \
    >"$log" 2>&1
  rc=$?
  set -e
  secs=$(($(date +%s) - start))
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo "?")
  if [ $rc -eq 0 ]; then outcome=ok; else outcome="CRASH (exit $rc, see $log)"; status=1; fi
  echo "$h: $execs executions in ${secs} s, coverage $cov, $outcome"
  rows+=("| $h | $execs | $secs | $cov | $outcome |")
  if [ $rc -ne 0 ]; then grep -m3 -E 'ERROR|SUMMARY|terminate|what\(\)' "$log" || true; fi
done

if [ "$MODE" = long ]; then
  commit=$(git rev-parse --short HEAD)
  out="benchmarks/results/fuzz_$(date -u +%Y-%m-%d)_${commit}.md"
  {
    echo "# Fuzzing run, $(date -u +%Y-%m-%dT%H:%MZ), commit $commit"
    echo
    echo "\`bash scripts/fuzz.sh\` with FUZZ_RUNS=$RUNS on $(nproc) cores ($(uname -m)), clang"
    echo "$(clang --version | head -1 | sed 's/ *$//'), ASan + UBSan, seeds from fuzz/corpus/."
    echo
    echo "| harness | executions | seconds | coverage (edges) | outcome |"
    echo "|---|---|---|---|---|"
    printf '%s\n' "${rows[@]}"
  } >"$out"
  echo "recorded in $out"
fi
cd "$ROOT"
exit $status
