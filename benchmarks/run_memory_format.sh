#!/usr/bin/env bash
# Memory format on the CPU: training compute (images/s, forward + backward + Adam step) of
# networks from 2 to 16 channels wide, NCHW against channels-last, with bench_train_speed.
# It backs the width rule of MemoryFormat::kAuto (plugin/src/train/trainer.cpp).
# Writes benchmarks/results/memory_format_<date>_<shortcommit>.{json,md}.
#   THREADS=1 BATCH=64 ITERS=30 REPEATS=3 BUILD_DIR=build DATA=data/fashion-mnist
# Run it on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-1}
BATCH=${BATCH:-64}
ITERS=${ITERS:-30}
REPEATS=${REPEATS:-3}
BUILD_DIR=${BUILD_DIR:-build}
DATA=${DATA:-data/fashion-mnist}
BENCH_BIN=${BENCH_BIN:-$BUILD_DIR/benchmarks/bench_train_speed}
SPACE=search_spaces/bench_fmnist_size.yaml
if [ ! -x "$BENCH_BIN" ]; then
  echo "no $BENCH_BIN: build it with cmake --build $BUILD_DIR --target bench_train_speed" >&2
  exit 2
fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
for config in '{"B":2,"K":3,"M":2}' '{"B":4,"K":3,"M":2}' '{"B":4,"K":5,"M":3}' \
  '{"B":8,"K":3,"M":2}' '{"B":8,"K":5,"M":3}'; do
  for cl in 0 1; do
    for r in $(seq "$REPEATS"); do
      # bench_train_speed prints one pretty-printed object; keep one line per run.
      "$BENCH_BIN" --dataset fashion-mnist --data "$DATA" --space "$SPACE" --config "$config" \
        --threads "$THREADS" --batch "$BATCH" --iters "$ITERS" --skip-epoch \
        --channels-last "$cl" 2>/dev/null |
        python3 -c 'import json, sys; print(json.dumps(json.load(sys.stdin)))' >>"$TMP/runs.jsonl"
    done
  done
done

COMMIT=$(git rev-parse --short HEAD)
DATE=$(date -u +%Y-%m-%d)
OUT=benchmarks/results/memory_format_${DATE}_${COMMIT}
python3 - "$TMP/runs.jsonl" "$OUT" "$COMMIT" "$DATE" <<'PY'
import json, os, platform, statistics, sys
runs = [json.loads(x) for x in open(sys.argv[1])]
out, commit, date = sys.argv[2:5]
by = {}
for r in runs:
    by.setdefault(r["config"], {}).setdefault(r["channels_last"], []).append(
        r["compute_images_per_second"])
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
doc = {"commit": commit, "date": date, "machine": {"cpu": cpu, "cores": os.cpu_count(),
       "load_average_after": os.getloadavg()}, "runs": runs}
with open(out + ".json", "w") as f:
    json.dump(doc, f, indent=2)
r0 = runs[0]
lines = [f"# Memory format on the CPU, {date}, commit {commit}", "",
         f"Machine: {cpu}, {os.cpu_count()} cores; load average after the run "
         f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}. LibTorch {r0['torch_version']}, "
         f"{r0['threads']} thread(s), batch {r0['batch']}, Adam, space {r0['space']} "
         "(Fashion-MNIST 28x28x1). Training compute, median images/s of the repeats.", "",
         "| configuration | parameters | narrowest conv | NCHW | channels-last | channels-last / NCHW | auto picks |",
         "|---|---|---|---|---|---|---|"]
for config, fmt in by.items():
    nchw, cl = statistics.median(fmt[False]), statistics.median(fmt[True])
    width = int(config.split("_")[0][1:])
    params = next(r["parameters"] for r in runs if r["config"] == config)
    lines.append(f"| {config} | {params} | {width} | {nchw:.0f} | {cl:.0f} | {cl / nchw:.2f}x | "
                 f"{'channels-last' if width >= 8 else 'NCHW'} |")
with open(out + ".md", "w") as f:
    f.write("\n".join(lines) + "\n")
print(out + ".md")
PY
