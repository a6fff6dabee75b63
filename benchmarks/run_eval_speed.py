#!/usr/bin/env python3
"""Forward-only evaluation speed by eval batch size, on the CPU: images/s of eval-mode forward
passes at the batch evaluation picks ("auto", eval_batch_size_for) and at fixed sizes, next to
the training step's images/s, for networks of the README's spaces (bench_train_speed).

    benchmarks/run_eval_speed.py --build-dir build --threads 2

Writes benchmarks/results/eval_speed_<date>_<commit>.{json,md} (or --out). Run it on an idle
machine: the CPU time other processes took is recorded (other_load.py).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import timing_report  # noqa: E402
from other_load import OtherLoad  # noqa: E402

# (space, configuration, input, channels-last as the trainer's "auto" picks it on the CPU)
NETWORKS = [
    ("search_spaces/resnet_tiny.yaml", {"B": 4, "K": 3, "M": 1}, "1x28x28", 0),
    ("search_spaces/resnet_tiny.yaml", {"B": 8, "K": 3, "M": 2}, "1x28x28", 1),
    ("search_spaces/resnet_tiny.yaml", {"B": 16, "K": 5, "M": 2}, "1x28x28", 1),
    ("search_spaces/resnet20.yaml", {"B": 16, "K": 3, "M": 2}, "3x32x32", 1),
]
BATCHES = ["auto", "32", "64", "128", "256", "1000"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build-dir", type=Path, default=ROOT / "build")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    binary = args.build_dir / "benchmarks" / "bench_train_speed"
    if not binary.is_file():
        raise SystemExit(f"no {binary}: cmake --build {args.build_dir} --target bench_train_speed")
    rows = []
    load = OtherLoad().start()
    for space, config, shape, channels_last in NETWORKS:
        argv = [str(binary), "--space", str(ROOT / space), "--config", json.dumps(config)]
        argv += ["--input", shape, "--threads", str(args.threads), "--skip-epoch"]
        argv += ["--channels-last", str(channels_last), "--eval-batches", ",".join(BATCHES)]
        argv += ["--batch", "64" if "tiny" in space else "128"]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed: {done.stderr[-2000:]}")
        rows.append(json.loads(done.stdout))
    load.stop()
    report = {
        **timing_report.header("eval_speed", load),
        "threads": args.threads,
        "rows": rows,
    }
    name = timing_report.stem("eval_speed", report["commit"])
    timing_report.write(args.out, name, report, markdown(report))
    return 0


def markdown(r: dict) -> str:
    head = "| network | layout | training, img/s (batch) | " + " | ".join(
        f"forward at {b}" for b in BATCHES
    )
    lines = [
        f"# Forward-only evaluation speed by batch size ({r['date']}, commit {r['commit']})",
        "",
        f"Machine: {r['machine']['cpu']}, {r['machine']['cores']} cores, {r['threads']} threads. "
        f"{r['load_sentence']}",
        "Images/s of eval-mode forward passes (inference mode, argmax) on one in-memory batch; "
        "'auto' is the batch evaluation picks (eval_batch_size_for: the first activation fits in "
        "three quarters of the threads' L2 caches). Memory format as the trainer's auto rule "
        "picks it on the CPU.",
        "",
        head + " | auto vs 1000 |",
        "|---" * (len(BATCHES) + 4) + "|",
    ]
    for row in r["rows"]:
        f = row["forward_images_per_second"]
        cells = [f"{f[b]:,.0f}" for b in BATCHES]
        cells[0] += f" ({row['auto_eval_batch']})"
        lines.append(
            f"| {row['space']} {row['config']} | {'NHWC' if row['channels_last'] else 'NCHW'} | "
            f"{row['compute_images_per_second']:,.0f} ({row['batch']}) | "
            + " | ".join(cells)
            + f" | {f['auto'] / f['1000']:.1f}x |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
