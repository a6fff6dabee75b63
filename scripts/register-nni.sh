#!/usr/bin/env bash
# Registers the DataProxy tuner with the NNI of the project's venv, so that an experiment's config
# names it like a built-in tuner (tuner: {name: DataProxy, classArgs: ...}). Idempotent: a second
# run updates the registration. NNICTL overrides the nnictl used.
set -euo pipefail
cd "$(dirname "$0")/.."
NNICTL=${NNICTL:-.venv/bin/nnictl}
echo "== NNI: registering the DataProxy tuner"
"$NNICTL" algo register --meta plugin/python/dataproxy/nni/algorithm.yml
