#!/usr/bin/env bash
# The README's main job: an Optuna search through the data proxy, on SQLite, over a small real
# slice of Fashion-MNIST, ending with the report. About 2 minutes on 2 idle CPU cores.
# The proxy is the one `dataproxy calibrate` recommended for this data and space (random, 20%,
# the space's length: benchmarks/results/calibration_main_job_2026-11-30_*.md); a 12-trial search
# cannot afford its own calibration (`--ratio auto` refuses at a 10% budget), so it is fixed here.
#   1. `dataproxy generate`: the 20% proxy (cached: a rerun reuses it);
#   2. 12 Optuna trials (grid sampler: each of resnet_tiny's 12 configurations once, in a
#      seeded order; median pruner), each training a resnet_tiny candidate on the
#      proxy with the C++ trial runner; the first 5 also train on the full slice (spot checks,
#      never pruned), which gives the proxy-vs-full rank correlation;
#   3. `dataproxy report`: report.json and report.html in the experiment folder.
# Each run starts a fresh experiment in $EXPERIMENT (the proxy cache is kept).
# Settings (environment):
#   BUILD_DIR=build            where scripts/setup.sh built the programs
#   DATA_ROOT=data             datasets (scripts/setup.sh fetches Fashion-MNIST there)
#   EXPERIMENT=experiments/main-job
#   N_TRIALS=12 EPOCHS=4 MAX_TRAIN=4000 MAX_TEST=1000 METHOD=random RATIO=0.2 SPOT_CHECKS=5
#   THREADS=$(nproc) SAMPLER=grid (or tpe, random)
# Extra arguments go to dataproxy-optuna (see `.venv/bin/dataproxy-optuna --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export DATAPROXY_BUILD_DIR=${DATAPROXY_BUILD_DIR:-$ROOT/${BUILD_DIR:-build}}
DATA_ROOT=${DATA_ROOT:-$ROOT/data}
EXPERIMENT=${EXPERIMENT:-$ROOT/experiments/main-job}
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}

if [ ! -x "$PYTHON" ]; then
  echo "main-job: $PYTHON not found; run scripts/setup.sh first" >&2
  exit 2
fi
if [ ! -d "$DATA_ROOT/fashion-mnist" ]; then
  echo "main-job: no Fashion-MNIST in $DATA_ROOT; run scripts/setup.sh first" \
    "(or: $DATAPROXY_BUILD_DIR/plugin/cli/dataproxy fetch-data fashion-mnist --root $DATA_ROOT)" >&2
  exit 2
fi

rm -rf "$EXPERIMENT"
exec "$PYTHON" -m dataproxy.optuna \
  --space "$ROOT/search_spaces/resnet_tiny.yaml" \
  --dataset fashion-mnist \
  --data-root "$DATA_ROOT" \
  --max-train "${MAX_TRAIN:-4000}" \
  --max-test "${MAX_TEST:-1000}" \
  --ratio "${RATIO:-0.2}" \
  --method "${METHOD:-random}" \
  --n-trials "${N_TRIALS:-12}" \
  --epochs "${EPOCHS:-4}" \
  --sampler "${SAMPLER:-grid}" \
  --pruner median \
  --spot-check-fraction 0 \
  --spot-check-first "${SPOT_CHECKS:-5}" \
  --experiment "$EXPERIMENT" \
  --study-name main-job \
  --threads "${THREADS:-$(nproc)}" \
  --seed 0 \
  "$@"
