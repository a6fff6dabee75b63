#!/usr/bin/env bash
# Trainer speed: LibTorch (bench_train_speed) against Python PyTorch eager
# (train_speed_torch.py), same network (ResNet20 B16 K3 M2), batch, optimizer and thread count.
# Writes benchmarks/results/train_speed_<date>_<shortcommit>.{json,md}.
#   THREADS=2 TRAIN_LIMIT=10000 ITERS=30 WORKERS=0,2 BUILD_DIR=build
#   BENCH_BIN=<path to bench_train_speed>  DATA=data (folder holding cifar-10-batches-bin)
# Run it on an otherwise idle machine: both programs need every core they are given.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
THREADS=${THREADS:-2}
TRAIN_LIMIT=${TRAIN_LIMIT:-10000}
ITERS=${ITERS:-30}
WORKERS=${WORKERS:-0,2}
DATA=${DATA:-$ROOT/data}
BUILD_DIR=${BUILD_DIR:-build}
BENCH_BIN=${BENCH_BIN:-$BUILD_DIR/benchmarks/bench_train_speed}
PYTHON=${PYTHON:-/usr/bin/python3}

if [ ! -x "$BENCH_BIN" ]; then
  echo "no $BENCH_BIN: build it with cmake --build $BUILD_DIR --target bench_train_speed" >&2
  exit 2
fi
if [ ! -f "$DATA/cifar-10-batches-bin/data_batch_1.bin" ]; then
  echo "no CIFAR-10 in $DATA/cifar-10-batches-bin: run dataproxy fetch-data cifar10" >&2
  exit 2
fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
echo "== C++ (LibTorch), $THREADS threads" >&2
"$BENCH_BIN" --threads "$THREADS" --iters "$ITERS" --train-limit "$TRAIN_LIMIT" \
  --data "$DATA" --space "$ROOT/search_spaces/resnet20.yaml" >"$TMP/cpp.json"
echo "== Python (PyTorch eager), $THREADS threads" >&2
"$PYTHON" benchmarks/train_speed_torch.py --threads "$THREADS" --iters "$ITERS" \
  --train-limit "$TRAIN_LIMIT" --workers "$WORKERS" \
  --data "$DATA/cifar-10-batches-bin" >"$TMP/py.json"

COMMIT=$(git rev-parse --short HEAD)
DATE=$(date -u +%Y-%m-%d)
OUT="benchmarks/results/train_speed_${DATE}_${COMMIT}"
mkdir -p benchmarks/results
CPU_MODEL=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
MEM_KB=$(sed -n 's/^MemTotal: *\([0-9]*\) kB/\1/p' /proc/meminfo)
"$PYTHON" - "$TMP/cpp.json" "$TMP/py.json" "$OUT" "$COMMIT" "$DATE" "$CPU_MODEL" "$(nproc)" \
  "$MEM_KB" "$TRAIN_LIMIT" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import json
import sys

cpp_path, py_path, out, commit, date, cpu, cores, mem_kb, limit, load = sys.argv[1:]
cpp = json.load(open(cpp_path))
py = json.load(open(py_path))
assert cpp["parameters"] == py["parameters"], "the two networks differ"
py_compute = max(py["compute_images_per_second"].values())
best_epoch = min(py["epochs"], key=lambda e: e["seconds"])
result = {
    "benchmark": "train_speed",
    "commit": commit,
    "date": date,
    "machine": {"cpu": cpu, "cores": int(cores), "memory_gib": round(int(mem_kb) / 2**20, 1),
                "load_average_after": load},
    "threads": {"cpp": cpp["threads"], "python": py["threads"]},
    "network": f"{cpp['space']} {cpp['config']} ({cpp['parameters']} parameters)",
    "train_limit": int(limit),
    "cpp": cpp,
    "python": py,
    "ratios": {
        "compute": cpp["compute_images_per_second"] / py_compute,
        "epoch": best_epoch["seconds"] / cpp["epoch"]["seconds"],
    },
    "goals": {"compute": 1.0, "epoch": 1.5},
    "notes": [
        "compute ratio: C++ images/s over the faster of Python NCHW and channels_last",
        "epoch ratio: the fastest Python DataLoader variant's epoch time over the C++ epoch",
        "Python reads the binary CIFAR-10 batches with a small Dataset (torchvision's CIFAR10 "
        "needs the pickle version); per-sample RandomCrop(32, 4), RandomHorizontalFlip, "
        "ToTensor, Normalize",
    ],
}
json.dump(result, open(out + ".json", "w"), indent=2)
r = result["ratios"]
lines = [
    f"# Training speed, {date}, commit {commit}",
    "",
    f"Machine: {cpu}, {cores} cores, {result['machine']['memory_gib']} GiB; load average "
    f"after the run {load}. Threads: C++ {cpp['threads']}, Python {py['threads']}. "
    f"Network: {result['network']}, batch {cpp['batch']}, Adam. LibTorch "
    f"{cpp['torch_version']}, PyTorch {py['torch_version']}.",
    "",
    "| measure | C++ (LibTorch) | Python eager | ratio | goal |",
    "|---|---|---|---|---|",
    f"| (a) compute, images/s | {cpp['compute_images_per_second']:.0f} | "
    f"{py['compute_images_per_second']['nchw']:.0f} NCHW, "
    f"{py['compute_images_per_second']['channels_last']:.0f} channels_last | "
    f"{r['compute']:.2f}x | >= 1.0x |",
    f"| (b) epoch of {cpp['epoch']['images']} images, s | {cpp['epoch']['seconds']:.1f} | "
    + ", ".join(f"{e['seconds']:.1f} ({e['workers']} workers)" for e in py["epochs"])
    + f" | {r['epoch']:.2f}x | >= 1.5x |",
    "",
    "Epochs cover the first " + str(limit) + " training images of CIFAR-10 (0 = all). "
    "Python epoch: a Dataset over the binary batches with per-sample torchvision transforms "
    "(RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor, Normalize) and a DataLoader; "
    "the ratio uses its fastest worker count. C++ epoch: Trainer::fit (whole set on the device "
    "as uint8, batch gather, crop/flip/normalise on the batch, channels_last).",
]
open(out + ".md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
echo "wrote $OUT.json and $OUT.md" >&2
