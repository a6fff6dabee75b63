#!/usr/bin/env python3
"""What one trial costs a user: the wall time of one candidate's trial against its training time,
for one process per trial (NNI's way, and `--no-serve`) and for a long-lived
`dataproxy-trial --serve` (the Optuna worker's default), from outside and from the wall-time
split every record carries ("timing").

    benchmarks/run_trial_wall.py --max-train 0 --max-test 0 --ratio 0.05      # full F-MNIST, 5%

The proxy is drawn at random by default: how it was chosen does not change what a trial costs
(the importance method's probes are paid once, by `dataproxy generate`, and are counted in the
ranking benchmark's ledger). Each mode runs the candidate `--repeats` times; the served mode's
first request pays the start-up and the data and is reported apart. Writes
benchmarks/results/trial_wall_<date>_<commit>.{json,md}. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugin" / "python"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import timing_report  # noqa: E402
from dataproxy.commands import GenerateOptions, generate_argv, run_generate  # noqa: E402
from dataproxy.optuna._server import TERMINAL_EVENTS, TrialServer  # noqa: E402
from dataproxy.optuna.objective import RunnerOptions, runner_argv, serve_request, server_argv  # noqa: E402
from dataproxy.space import load_space  # noqa: E402
from other_load import OtherLoad  # noqa: E402
from run_search_speed import read_records  # noqa: E402

SPLIT = ("startup", "data", "train", "eval", "write", "total")


def median_split(records: list[dict]) -> dict:
    return {k: statistics.median(float(r["timing"].get(k, 0.0)) for r in records) for k in SPLIT}


def per_process(args, opts: RunnerOptions, params: dict, results: Path) -> dict:
    argv = runner_argv(opts, params, trial_id="lightest", spot_check=False)
    walls = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True)
        walls.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"dataproxy-trial failed ({done.returncode}): {done.stderr[-2000:]}")
    records = read_records(results)[-args.repeats :]
    return summary("one process per trial", walls, records)


def served(args, opts: RunnerOptions, params: dict) -> tuple[dict, dict]:
    server = TrialServer(server_argv(opts))
    walls, finals = [], []
    try:
        for i in range(args.repeats + 1):
            start = time.perf_counter()
            final = None
            for event in server.request(serve_request(params, trial_id=str(i), spot_check=False)):
                if event.get("event") in TERMINAL_EVENTS:
                    final = event
            walls.append(time.perf_counter() - start)
            if final is None or final.get("event") != "final":
                raise SystemExit(f"served trial {i} did not finish: {final}")
            finals.append(final)
    finally:
        server.close()
    records = read_records(Path(opts.results_dir))
    first = summary("served, first request (starts the server)", walls[:1], records[:1])
    rest = summary("served, later requests", walls[1:], records[1 : args.repeats + 1])
    return first, rest


def summary(mode: str, walls: list[float], records: list[dict]) -> dict:
    split = median_split(records)
    wall = statistics.median(walls)
    return {
        "mode": mode,
        "runs": len(walls),
        "wall_seconds": wall,
        "walls": walls,
        "split": split,
        "wall_over_train": wall / split["train"] if split["train"] > 0 else None,
        "proxy_accuracy": [r.get("proxy_accuracy") for r in records],
        "train_size": (records[0].get("data") or {}).get("train_size") if records else None,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--build-dir", type=Path, default=ROOT / "build")
    p.add_argument("--data-root", type=Path, default=ROOT / "data")
    p.add_argument("--space", type=Path, default=ROOT / "search_spaces" / "resnet_tiny.yaml")
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--max-train", type=int, default=0, help="0 = all")
    p.add_argument("--max-test", type=int, default=0, help="0 = all")
    p.add_argument("--ratio", type=float, default=0.05)
    p.add_argument("--method", default="random")
    p.add_argument("--params", default=None, help="JSON (default: the lightest configuration)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--eval-subset", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--work", type=Path, default=None)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    p.add_argument("--note", default="")
    args = p.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="trial-wall-"))
    dataproxy = str(args.build_dir / "plugin" / "cli" / "dataproxy")
    space = load_space(args.space, dataproxy)
    params = (
        json.loads(args.params)
        if args.params
        else {q.name: min(q.choices) for q in space.parameters}
    )
    load = OtherLoad().start()
    manifest = run_generate(
        generate_argv(
            dataproxy,
            GenerateOptions(
                space=str(args.space),
                dataset=args.dataset,
                data_root=str(args.data_root),
                ratio=args.ratio,
                method=args.method,
                seed=0,
                max_train=args.max_train,
                max_test=args.max_test,
                cache=str(work / "cache"),
                threads=args.threads,
                report="quiet",
            ),
        )
    ).path

    def options(results: Path) -> RunnerOptions:
        return RunnerOptions(
            binary=str(args.build_dir / "trial_runner" / "dataproxy-trial"),
            manifest=str(manifest),
            space_file=str(args.space),
            data_root=str(args.data_root),
            results_dir=str(results),
            epochs=args.epochs,
            device="cpu",
            threads=args.threads,
            seed=0,
            eval_subset=args.eval_subset,
        )

    rows = [per_process(args, options(work / "process"), params, work / "process")]
    rows += list(served(args, options(work / "served"), params))
    load.stop()
    report = {
        **timing_report.header("trial_wall", load),
        "note": args.note,
        "params": params,
        "settings": {
            k: (str(v) if isinstance(v, Path) else v)
            for k, v in vars(args).items()
            if k not in ("out", "work")
        },
        "rows": rows,
    }
    tag = f"{int(args.ratio * 100)}pct-{args.max_train or 'all'}"
    name = timing_report.stem("trial_wall", report["commit"], tag)
    timing_report.write(args.out, name, report, markdown(report))
    return 0


def markdown(r: dict) -> str:
    s = r["settings"]
    lines = [
        f"# One trial's wall time ({r['date']}, commit {r['commit']})",
        "",
        f"Machine: {r['machine']['cpu']}, {r['machine']['cores']} cores. {r['load_sentence']}",
        f"Setting: {s['dataset']}, train {s['max_train'] or 'all'} / test "
        f"{s['max_test'] or 'all'}, {s['method']} proxy at {s['ratio']:g} "
        f"({r['rows'][0]['train_size']} images), space {Path(s['space']).name}, configuration "
        f"{json.dumps(r['params'])}, {s['epochs']} epochs, {s['threads']} threads, eval subset "
        f"{s['eval_subset']} (the last epoch evaluates the whole ranking split); medians of "
        f"{s['repeats']} runs." + (f" {r['note']}" if r["note"] else ""),
        "",
        "| mode | runs | wall s (outside) | startup | data | train | eval | write | wall / train |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        sp = row["split"]
        ratio = row["wall_over_train"]
        lines.append(
            f"| {row['mode']} | {row['runs']} | {row['wall_seconds']:.2f} | {sp['startup']:.2f} | "
            f"{sp['data']:.2f} | {sp['train']:.2f} | {sp['eval']:.2f} | {sp['write']:.3f} | "
            + (f"{ratio:.2f}" if ratio else "n/a")
            + " |"
        )
    lines += [
        "",
        "Goal (issue 16, on a quiet machine): at 5% of the full Fashion-MNIST, the lightest "
        "configuration's trial wall time at most 1.5x its training time.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
