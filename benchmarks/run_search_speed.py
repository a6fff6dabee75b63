#!/usr/bin/env python3
"""What a user pays for a search: a real Optuna study (TPE, median pruner) over a search space,
once on the full training data and once on each data proxy, every trial a `dataproxy-trial`
process. Reports, per proxy ratio, the wall-clock speedup of the whole study next to its
training-seconds speedup (the sum of the trials' training time), and, for the lightest
configuration at each ratio, a trial's wall time against its training time, from the
wall-time split every record carries ("timing").

    benchmarks/run_search_speed.py --build-dir build-perf --data-root data \\
        --max-train 20000 --max-test 10000 --ratios 0.1 0.05 0.02 --epochs 3 --trials 12

Writes benchmarks/results/search_speed_<date>_<commit>.{json,md} (or --out). The CPU time other
processes took during the run is recorded (other_load.py); a run where they took more than 10%
of the machine is labelled contended: its numbers say where time goes, not whether the goals are
met.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugin" / "python"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import optuna  # noqa: E402
import timing_report  # noqa: E402
from dataproxy.commands import GenerateOptions, generate_argv, run_generate  # noqa: E402
from dataproxy.errors import DataproxyError  # noqa: E402
from dataproxy.optuna.objective import (  # noqa: E402
    DataProxyObjective,
    RunnerFailed,
    RunnerOptions,
    runner_argv,
)
from dataproxy.space import load_space  # noqa: E402
from other_load import OtherLoad  # noqa: E402


def split_size(n: int) -> str:
    return f"first {n}" if n else "all"


def dataproxy_bin(args) -> str:
    return str(args.build_dir / "plugin" / "cli" / "dataproxy")


def generate(args, ratio: float, method: str, cache: Path) -> Path:
    options = GenerateOptions(
        space=str(args.space),
        dataset=args.dataset,
        data_root=str(args.data_root),
        ratio=ratio,
        method=method,
        seed=args.seed,
        max_train=args.max_train,
        max_test=args.max_test,
        probe_epochs=args.probe_epochs,
        cache=str(cache),
        threads=args.threads,
        report="quiet",
    )
    try:
        return Path(run_generate(generate_argv(dataproxy_bin(args), options)).path)
    except DataproxyError as e:
        raise SystemExit(str(e)) from None


def runner_options(args, manifest: Path, results: Path) -> RunnerOptions:
    return RunnerOptions(
        binary=str(args.build_dir / "trial_runner" / "dataproxy-trial"),
        manifest=str(manifest),
        space_file=str(args.space),
        data_root=str(args.data_root),
        results_dir=str(results),
        epochs=args.epochs,
        device="cpu",
        threads=args.threads,
        seed=args.seed,
        eval_subset=args.eval_subset,
        serve=args.serve,
    )


def read_records(results: Path) -> list[dict]:
    path = results / "results.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def sum_timing(records: list[dict]) -> dict:
    keys = ("startup", "data", "train", "eval", "write", "total")
    out = {k: 0.0 for k in keys}
    for r in records:
        for k in keys:
            out[k] += float((r.get("timing") or {}).get(k, 0.0))
    return out


def search(args, label: str, manifest: Path, work: Path) -> dict:
    results = work / f"search-{label}"
    space = load_space(args.space, dataproxy_bin(args))
    objective = DataProxyObjective(space, runner_options(args, manifest, results))
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=args.seed, n_startup_trials=4),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1),
    )
    start = time.perf_counter()
    try:
        study.optimize(objective, n_trials=args.trials, catch=(RunnerFailed,))
        wall = time.perf_counter() - start
    finally:
        objective.close()  # the study's server ends (and is reaped) before the next study
    records = read_records(results)
    states = {}
    for t in study.trials:
        states[t.state.name] = states.get(t.state.name, 0) + 1
    split = sum_timing(records)
    return {
        "label": label,
        "manifest": str(manifest),
        "wall_seconds": wall,
        "train_seconds": split["train"],
        "split": split,
        "trials": len(study.trials),
        "runner_processes": len(records),
        "states": states,
        "best": study.best_trial.params if states.get("COMPLETE") else None,
    }


def lightest_trial(args, manifest: Path, work: Path, eval_subset: int) -> dict:
    """One trial of the lightest configuration: its wall time seen from outside and its split."""
    space = load_space(args.space, dataproxy_bin(args))
    params = {p.name: min(p.choices) for p in space.parameters}
    results = work / f"lightest-{manifest.parent.name}-{eval_subset}"
    opts = dataclasses.replace(runner_options(args, manifest, results), eval_subset=eval_subset)
    argv = runner_argv(opts, params, trial_id="lightest", spot_check=False)
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"dataproxy-trial failed ({done.returncode}): {done.stderr[-2000:]}")
    record = read_records(results)[-1]
    split = record["timing"]
    return {
        "params": params,
        "eval_subset": eval_subset,
        "wall_seconds": wall,
        "split": split,
        "proxy_accuracy": record["proxy_accuracy"],
        "wall_over_train": wall / split["train"] if split["train"] > 0 else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build-dir", type=Path, default=ROOT / "build")
    parser.add_argument("--data-root", type=Path, default=ROOT / "data")
    parser.add_argument("--space", type=Path, default=ROOT / "search_spaces" / "resnet_tiny.yaml")
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--max-train", type=int, default=20000)
    parser.add_argument("--max-test", type=int, default=10000)
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.1, 0.05, 0.02])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--probe-epochs", type=int, default=3)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-subset", type=int, default=1000)
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--note", default="", help="free text for the report (e.g. 'small check')")
    parser.add_argument(
        "--serve",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="one `dataproxy-trial --serve` per study (the Optuna default); --no-serve: one "
        "process per trial, as before",
    )
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    import tempfile

    work = args.work or Path(tempfile.mkdtemp(prefix="search-speed-"))
    cache = work / "cache"
    load = OtherLoad().start()
    t0 = time.perf_counter()
    manifests = {"full": generate(args, 1.0, "random", cache)}
    for ratio in args.ratios:
        manifests[f"{ratio:g}"] = generate(args, ratio, "importance", cache)
    generate_seconds = time.perf_counter() - t0

    searches = {label: search(args, label, m, work) for label, m in manifests.items()}
    full = searches["full"]
    rows = []
    for ratio in args.ratios:
        label = f"{ratio:g}"
        s = searches[label]
        wall_speedup = full["wall_seconds"] / s["wall_seconds"]
        train_speedup = full["train_seconds"] / s["train_seconds"] if s["train_seconds"] else None
        light = lightest_trial(args, manifests[label], work, args.eval_subset)
        light_whole = lightest_trial(args, manifests[label], work, 0)
        rows.append(
            {
                "ratio": ratio,
                "wall_speedup": wall_speedup,
                "train_speedup": train_speedup,
                "wall_over_train_speedup": wall_speedup / train_speedup if train_speedup else None,
                "lightest": light,
                "lightest_eval_whole_split": light_whole,
            }
        )
    load.stop()
    report = {
        **timing_report.header("search_speed", load),
        "note": args.note,
        "serve": args.serve,
        "settings": {
            k: (str(v) if isinstance(v, Path) else v)
            for k, v in vars(args).items()
            if k not in ("out", "work")
        },
        "generate_seconds": generate_seconds,
        "searches": searches,
        "rows": rows,
    }
    tag = f"{args.max_train or 'all'}-{args.max_test or 'all'}"
    tag += "" if args.serve else "_no-serve"
    name = timing_report.stem("search_speed", report["commit"], tag)
    timing_report.write(args.out, name, report, markdown(report))
    return 0


def markdown(r: dict) -> str:
    s = r["settings"]
    lines = [
        f"# Search speed ({r['date']}, commit {r['commit']})",
        "",
        f"Machine: {r['machine']['cpu']}, {r['machine']['cores']} cores. {r['load_sentence']}",
        f"Setting: {s['dataset']}, {split_size(s['max_train'])} train / "
        f"{split_size(s['max_test'])} test, "
        f"space {Path(s['space']).name}, {s['epochs']} epochs, {s['trials']} Optuna trials "
        f"(TPE seed {s['seed']}, median pruner), {s['threads']} threads, eval subset "
        f"{s['eval_subset']}; "
        + (
            "one `dataproxy-trial --serve` per study."
            if r.get("serve", False)
            else "one `dataproxy-trial` process per trial."
        )
        + (f" Note: {r['note']}" if r["note"] else ""),
        "",
        "| search | wall s | training s | startup s | data s | eval s | trials | states |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, x in r["searches"].items():
        sp = x["split"]
        lines.append(
            f"| {label} | {x['wall_seconds']:.1f} | {x['train_seconds']:.1f} | "
            f"{sp['startup']:.1f} | {sp['data']:.1f} | {sp['eval']:.1f} | {x['trials']} | "
            f"{x['states']} |"
        )
    lines += [
        "",
        "| ratio | wall-clock speedup | training-s speedup | wall / training speedup | "
        "lightest: wall / train (subset) | lightest: wall / train (whole split each epoch) |",
        "|---|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        ts = row["train_speedup"]
        ratio = row["wall_over_train_speedup"]
        lines.append(
            f"| {row['ratio']:g} | {row['wall_speedup']:.2f}x | "
            + (f"{ts:.2f}x" if ts else "n/a")
            + " | "
            + (f"{ratio:.2f}" if ratio else "n/a")
            + f" | {row['lightest']['wall_over_train']:.2f} "
            f"({row['lightest']['wall_seconds']:.2f} s / {row['lightest']['split']['train']:.2f} s)"
            f" | {row['lightest_eval_whole_split']['wall_over_train']:.2f} "
            f"({row['lightest_eval_whole_split']['wall_seconds']:.2f} s) |"
        )
    lines += [
        "",
        "Goals (on a quiet machine): at 5% the lightest trial's wall time <= 1.5x its training "
        "time; the search's wall-clock speedup at 5% within 20% of its training-seconds speedup "
        "(wall / training speedup >= 0.8).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
