#!/usr/bin/env python3
"""Ranking benchmark, second edition (issue 12): does a data proxy keep the ranking of a search
space's candidates, against an averaged full-data reference, on test samples selection never
saw, against every alternative of equal cost (importance per class and global, random,
stratified, the full data with fewer steps), with enough proxy seeds for paired tests?

    .venv/bin/python benchmarks/ranking/run.py run --tier smoke      # a few minutes
    .venv/bin/python benchmarks/ranking/run.py run --tier cpu [--deadline HH:MM]
    .venv/bin/python benchmarks/ranking/run.py run --run-dir benchmarks/out/ranking/<run>  # resume
    .venv/bin/python benchmarks/ranking/run.py analyse benchmarks/out/ranking/<run>
    .venv/bin/python benchmarks/ranking/run.py pack-data / unpack-data   # CIFAR-10 in parts

The modules, by concern: plan.py (tiers, arms, steps), runner.py (generate / evaluate, resume,
reference cache), stats.py (metrics, intervals, paired tests, MDE), analyse.py (records to
numbers), tables.py (markdown), plots.py (matplotlib), datapack.py (CIFAR-10 parts), tool.py
(the binary), util.py. benchmarks/ranking/README.md documents the protocol.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datapack  # noqa: E402
import tool  # noqa: E402
from plan import TIERS, Tier  # noqa: E402
from util import REPO, RESULTS, WORK, log, rel  # noqa: E402


def main() -> None:
    def stop(*_: object) -> None:
        tool.kill_children()  # the trainings in flight end with the benchmark
        sys.exit(143)

    # SIGTERM ends the benchmark like Ctrl-C: the running children are killed with it.
    signal.signal(signal.SIGTERM, stop)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run a tier (or resume a run folder), then analyse it")
    r.add_argument("--tier", choices=sorted(TIERS), default="cpu")
    r.add_argument("--bin", help="dataproxy binary (default: build/ or build-ranking/)")
    r.add_argument("--run-dir", help="resume this run folder instead of starting a new one")
    r.add_argument("--data-root", help="dataset folder when the tier's default is missing")
    r.add_argument("--deadline", help="HH:MM UTC: start no training that would end later")
    r.add_argument("--seeds", type=int, help="override the proxy seeds of every space")
    r.add_argument("--jobs", type=int, help="override the tier's trainings at once")
    r.add_argument("--threads", type=int, help="override the tier's threads per training")
    r.add_argument("--spaces", help="comma-separated YAML stems to run (default: the tier's)")
    r.add_argument("--reference-only", action="store_true", help="build the reference only")
    r.add_argument("--no-analyse", action="store_true", help="run only")
    r.add_argument(
        "--check-last",
        action="store_true",
        help="train the convergence check (twice the epochs) after the proxies, not first",
    )
    a = sub.add_parser("analyse", help="tables, plots and summary from a run folder")
    a.add_argument("run_dir")
    a.add_argument("--bin")
    a.add_argument("--out", default=str(RESULTS), help="folder for the tables and plots")
    p = sub.add_parser("pack-data", help="split CIFAR-10 into parts for size-limited uploads")
    p.add_argument("--root", default=str(REPO / "data"))
    p.add_argument("--out", default=str(REPO / "data" / "cifar10-parts"))
    p.add_argument("--part-mib", type=int, default=48)
    u = sub.add_parser("unpack-data", help="join and verify parts written by pack-data")
    u.add_argument("--parts", default=str(REPO / "data" / "cifar10-parts"))
    u.add_argument("--root", default=str(REPO / "data"))
    args = ap.parse_args()

    if args.command == "pack-data":
        datapack.pack_data(Path(args.root), Path(args.out), args.part_mib)
        return
    if args.command == "unpack-data":
        datapack.unpack_data(Path(args.parts), Path(args.root))
        return

    import analyse  # noqa: E402  (NumPy, SciPy and matplotlib only where needed)
    from runner import Runner

    binary = tool.find_binary(args.bin)
    if args.command == "analyse":
        out = Path(args.out).resolve()
        out.mkdir(parents=True, exist_ok=True)
        md = analyse.analyse_run(Path(args.run_dir).resolve(), out, binary)
        log(f"wrote {rel(md)}")
        return

    tier_name = args.tier
    tier = TIERS[tier_name]
    run_dir = (
        Path(args.run_dir)
        if args.run_dir
        else WORK / f"{tier_name}-{dt.datetime.now(dt.timezone.utc).strftime('%Y%m%d-%H%M%S')}"
    ).resolve()
    if args.run_dir and (run_dir / "plan.json").exists():
        doc = json.loads((run_dir / "plan.json").read_text())
        tier_name = doc["tier"]
        tier = Tier.from_dict(doc["tier_settings"])  # a resumed run keeps its plan
    if args.jobs is not None:
        if args.jobs < 1:
            sys.exit("run.py: --jobs must be 1 or more")
        tier.jobs = args.jobs
    if args.threads is not None:
        tier.threads = args.threads
    if args.seeds is not None:
        for plan in tier.spaces:
            plan.seeds = args.seeds
    if args.spaces:
        wanted = set(args.spaces.split(","))
        tier.spaces = [p for p in tier.spaces if Path(p.space).stem in wanted]
    run_dir.mkdir(parents=True, exist_ok=True)
    log(f"run folder {run_dir}")
    runner = Runner(tier, tier_name, run_dir, binary, args.deadline, args.data_root)
    try:
        runner.run(reference_only=args.reference_only, check_last=args.check_last)
    except KeyboardInterrupt:
        tool.kill_children()
        raise
    if not args.no_analyse and not args.reference_only:
        md = analyse.analyse_run(run_dir, RESULTS, binary)
        log(f"wrote {rel(md)}")


if __name__ == "__main__":
    main()
