#!/usr/bin/env python3
"""Ranking benchmark (issue 7): the paper's Table 1 protocol, with seeds, intervals and costs.

Trains every configuration of a search space on the full data, on our proxy and on the random
and stratified baselines, at several ratios, seeds and proxy training lengths, using only the
project's own commands (`dataproxy generate`, `dataproxy evaluate`, `dataproxy report`), then
writes the tables, the cost ledger and a tau-versus-cost plot to benchmarks/results/.

    .venv/bin/python benchmarks/ranking/run.py run --tier cpu       # the CPU tier (< 60 min)
    .venv/bin/python benchmarks/ranking/run.py run --tier smoke     # a two-minute check
    .venv/bin/python benchmarks/ranking/run.py analyse RUN_DIR      # tables from a run again
    .venv/bin/python benchmarks/ranking/run.py pack-data / unpack-data   # CIFAR-10 in parts

benchmarks/ranking/README.md documents the protocol and every reduction.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import analysis  # noqa: E402
import svg  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "benchmarks" / "results"
FULL_CACHE = RESULTS / "ranking_cache"
WORK = REPO / "benchmarks" / "out" / "ranking"
METHODS = ("ours", "random", "stratified")
COLORS = {"ours": "#1f77b4", "random": "#d62728", "stratified": "#7f7f7f"}

# md5 of the extracted CIFAR-10 files (shared/notes/datasets.md); unpack-data checks them.
CIFAR10_MD5 = {
    "data_batch_1.bin": "5dd7e06a14cb22eb9f671a540d1b7c25",
    "data_batch_2.bin": "5ea93a67294ea407fff1d09f752e9692",
    "data_batch_3.bin": "942cd6a4bcdd0dd3c604fbe906cb4421",
    "data_batch_4.bin": "ae636b3ba5c66a11e91e8cb52e771fcb",
    "data_batch_5.bin": "53f37980c15c3d472c316c40844f3f0d",
    "test_batch.bin": "803d5f7f4d78ea53de84dbe85f74fb6d",
}


@dataclasses.dataclass
class SpacePlan:
    """What to run for one search space."""

    space: str  # YAML path, relative to the repository
    seeds: int  # sampling (and proxy training) seeds 0..seeds-1
    ratios: tuple[float, ...]
    lengths: dict[str, float]  # name -> proxy epochs as a multiple of the space's epochs
    # Lengths other than "paper" only for these ratios / methods (empty = all).
    long_ratios: tuple[float, ...] = ()
    long_methods: tuple[str, ...] = ()


@dataclasses.dataclass
class Tier:
    dataset: str
    data_roots: list[str]  # first existing one is used
    max_train: int  # 0 = all
    max_test: int
    threads: int
    device: str
    spaces: list[SpacePlan]
    full_seeds: int = 1  # full-data seeds; a second one measures the full data's own noise
    jobs: int = 1  # trainings run at once (each with `threads` threads)
    methods: tuple[str, ...] = METHODS
    priority_seeds: int = 3  # seeds that every space gets before any space gets more
    publish: bool = True  # results and full-data cache in benchmarks/results (else the run folder)

    @staticmethod
    def from_dict(d: dict) -> Tier:
        d = dict(d)
        d["spaces"] = [
            SpacePlan(
                **{
                    **p,
                    "ratios": tuple(p["ratios"]),
                    "long_ratios": tuple(p.get("long_ratios", ())),
                    "long_methods": tuple(p.get("long_methods", ())),
                }
            )
            for p in d["spaces"]
        ]
        d["methods"] = tuple(d["methods"])
        return Tier(**d)


PAPER_RATIOS = (0.1, 0.05, 0.02)
TIERS = {
    "cpu": Tier(
        dataset="fashion-mnist",
        data_roots=["data/fashion-mnist", "/usr/share/datasets/fashion-mnist"],
        max_train=10000,
        max_test=2000,
        threads=1,
        jobs=2,
        device="cpu",
        spaces=[
            # The long length for ours and random (stratified tracks random at paper length).
            SpacePlan(
                "search_spaces/bench_fmnist_size.yaml",
                5,
                PAPER_RATIOS,
                {"paper": 1, "long": 3},
                long_methods=("ours", "random"),
            ),
            SpacePlan(
                "search_spaces/bench_fmnist_close.yaml",
                5,
                PAPER_RATIOS,
                {"paper": 1, "long": 3},
                long_methods=("ours", "random"),
            ),
        ],
        full_seeds=2,
    ),
    "smoke": Tier(
        dataset="fashion-mnist",
        data_roots=["data/fashion-mnist", "/usr/share/datasets/fashion-mnist"],
        max_train=2000,
        max_test=500,
        threads=1,
        jobs=2,
        device="cpu",
        spaces=[
            SpacePlan("search_spaces/bench_fmnist_size.yaml", 1, (0.1,), {"paper": 1}),
        ],
        full_seeds=1,
        publish=False,
    ),
    "gpu": Tier(
        dataset="cifar10",
        data_roots=["data"],
        max_train=0,
        max_test=0,
        threads=0,
        device="cuda",
        spaces=[
            SpacePlan("search_spaces/resnet20.yaml", 3, PAPER_RATIOS, {"paper": 1, "long": 3}),
            SpacePlan("search_spaces/efficientnet_b0.yaml", 3, (0.1, 0.05), {"paper": 1}),
        ],
        full_seeds=1,
    ),
}


def rel(path: Path) -> str:
    """A path relative to the repository when it lies inside it."""
    path = Path(path)
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def now_utc() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def log(msg: str) -> None:
    print(f"[{dt.datetime.now(dt.timezone.utc).strftime('%H:%M:%S')}] {msg}", flush=True)


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a torn last line of a killed writer
    return rows


def append_jsonl(path: Path, row: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(row, sort_keys=True) + "\n")


def find_binary(explicit: str | None) -> Path:
    candidates = [explicit, os.environ.get("DATAPROXY_BIN")]
    candidates += [
        str(REPO / b / "plugin" / "cli" / "dataproxy") for b in ("build", "build-ranking")
    ]
    for c in candidates:
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return Path(c).resolve()
    sys.exit(
        "run.py: no dataproxy binary found; build it (cmake --build build --target dataproxy-cli) "
        "or pass --bin PATH / set DATAPROXY_BIN"
    )


def run_json_lines(argv: list[str]) -> tuple[list[dict], float]:
    """Runs a command (argv list, no shell); returns its JSON stdout lines and wall seconds."""
    start = time.monotonic()
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            stdout, stderr = proc.communicate()
        except BaseException:
            proc.kill()  # interrupted: the child must not outlive the benchmark
            raise
    wall = time.monotonic() - start
    if proc.returncode != 0:
        raise RuntimeError(
            f"command failed with exit code {proc.returncode}: {' '.join(argv)}\n"
            f"stderr: {stderr[-3000:]}\nstdout: {stdout[-1000:]}"
        )
    rows = []
    for line in stdout.splitlines():
        if line.startswith("{"):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return rows, wall


def run_parallel(argvs: list[list[str]]) -> float:
    """Runs the commands at the same time; returns the wall seconds until the last one ends."""
    if len(argvs) == 1:
        return run_json_lines(argvs[0])[1]
    start = time.monotonic()
    with ThreadPoolExecutor(len(argvs)) as pool:
        for f in [pool.submit(run_json_lines, a) for a in argvs]:
            f.result()  # raises the first failure
    return time.monotonic() - start


def split_balanced(items: list, weights: list[float], parts: int) -> list[list]:
    """Greedy split into at most `parts` non-empty lists of about equal total weight."""
    bins: list[list] = [[] for _ in range(max(1, min(parts, len(items))))]
    load = [0.0] * len(bins)
    for w, item in sorted(zip(weights, items, strict=True), key=lambda t: -t[0]):
        i = load.index(min(load))
        bins[i].append(item)
        load[i] += w
    return [b for b in bins if b]


def space_epochs(space_path: Path) -> int:
    doc = yaml.safe_load(space_path.read_text())
    return int((doc.get("training") or {}).get("epochs", 30))


def git_commit() -> dict:
    def git(*args: str) -> str:
        r = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)
        return r.stdout.strip()

    return {
        "commit": git("rev-parse", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--", "plugin", "benchmarks", "search_spaces")),
    }


def machine_info(binary: Path) -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    version = subprocess.run([str(binary), "version"], capture_output=True, text=True).stdout
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "dataproxy": version.strip(),
        "python": platform.python_version(),
    }


# ---------------------------------------------------------------------------------------------
# Running


class Runner:
    def __init__(self, args: argparse.Namespace, tier: Tier, run_dir: Path, binary: Path):
        self.args = args
        self.tier = tier
        self.run_dir = run_dir
        self.bin = binary
        self.data_root = self._data_root()
        self.deadline = self._deadline(args.deadline)
        self.log_path = run_dir / "events.jsonl"
        self.gen_path = run_dir / "generate.jsonl"
        self.block_seconds: dict[tuple[str, str], float] = {}
        self.block_total: dict[str, float] = {}

    def _data_root(self) -> str:
        for r in self.tier.data_roots:
            p = Path(r) if Path(r).is_absolute() else REPO / r
            if p.exists():
                return str(p)
        if self.args.data_root:
            return self.args.data_root
        sys.exit(
            f"run.py: no data for {self.tier.dataset} in {self.tier.data_roots}; fetch it with "
            f"`dataproxy fetch-data {self.tier.dataset}` or pass --data-root"
        )

    @staticmethod
    def _deadline(text: str | None) -> float | None:
        if not text:
            return None
        today = dt.datetime.now(dt.timezone.utc)
        hh, mm = (int(x) for x in text.split(":"))
        t = today.replace(hour=hh, minute=mm, second=0, microsecond=0)
        if t < today - dt.timedelta(hours=12):
            t += dt.timedelta(days=1)
        return t.timestamp()

    def event(self, **kw) -> None:
        kw["time"] = now_utc()
        kw["load_average"] = os.getloadavg()  # other work on the machine distorts the costs
        append_jsonl(self.log_path, kw)

    def skipped(self, plan: SpacePlan, seed: int, length: str, estimate: float | None) -> None:
        """Records a block left out because it would pass the deadline."""
        self.event(
            kind="skipped",
            space=plan.space,
            seed=seed,
            length=length,
            reason="deadline",
            estimate_s=estimate,
        )

    def fits(self, estimate: float | None) -> bool:
        if self.deadline is None or estimate is None:
            return True
        return time.time() + estimate <= self.deadline

    def common(self) -> list[str]:
        argv = ["--dataset", self.tier.dataset, "--data-root", self.data_root]
        if self.tier.max_train:
            argv += ["--max-train", str(self.tier.max_train)]
        if self.tier.max_test:
            argv += ["--max-test", str(self.tier.max_test)]
        argv += ["--threads", str(self.tier.threads)]
        return argv

    # Full-data results are kept with their settings and reused by every later run.
    def full_dir(self, plan: SpacePlan, seed: int) -> tuple[Path, dict]:
        space = REPO / plan.space
        settings = {
            "space_file_sha256": hashlib.sha256(space.read_bytes()).hexdigest(),
            "space": plan.space,
            "dataset": self.tier.dataset,
            "max_train": self.tier.max_train,
            "max_test": self.tier.max_test,
            "epochs": space_epochs(space),
            "seed": seed,
            "threads": self.tier.threads,
            "device": self.tier.device,
            "tool": machine_info(self.bin)["dataproxy"],
        }
        key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
        root = FULL_CACHE if self.tier.publish else self.run_dir / "full_cache"
        return root / f"{space.stem}-s{seed}-{key}", settings

    def ensure_full(self, plan: SpacePlan, seed: int) -> Path:
        d, settings = self.full_dir(plan, seed)
        store = d / "results.jsonl"
        ids = self.space_ids(plan)
        done = {r["config_id"] for r in read_jsonl(store) if r.get("full_accuracy") is not None}
        missing = [i for i in ids if i not in done]
        if not missing:
            log(f"full data {plan.space} seed {seed}: reused {rel(store)}")
            self.event(kind="full", space=plan.space, seed=seed, reused=True, dir=str(d))
            return d
        d.mkdir(parents=True, exist_ok=True)
        (d / "settings.json").write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")
        log(f"full data {plan.space} seed {seed}: training {len(missing)} configurations")
        # Jobs get interleaved configurations (the enumeration order tends to grow in size).
        jobs = max(1, min(self.tier.jobs, len(missing)))
        argvs = [
            self.evaluate_argv(plan, seed, store, "--configs", json.dumps(missing[j::jobs]))
            for j in range(jobs)
        ]
        wall = run_parallel(argvs)
        self.event(
            kind="full",
            space=plan.space,
            seed=seed,
            reused=False,
            wall_s=wall,
            trained=len(missing),
            dir=str(d),
        )
        return d

    def evaluate_argv(self, plan: SpacePlan, seed: int, store: Path, *extra: str) -> list[str]:
        """`dataproxy evaluate` of a space with the tier's data, threads and device."""
        return [
            str(self.bin),
            "evaluate",
            "--space",
            str(REPO / plan.space),
            *self.common(),
            "--seed",
            str(seed),
            "--device",
            self.tier.device,
            "--results",
            str(store),
            *extra,
        ]

    def space_ids(self, plan: SpacePlan) -> list[str]:
        cache = getattr(self, "_ids", {})
        if plan.space not in cache:
            # Config ids in the space's enumeration order, from the tool itself.
            rows, _ = run_json_lines(
                [str(self.bin), "evaluate", "--space", str(REPO / plan.space), "--list-configs"]
            )
            cache[plan.space] = [r["config_id"] for r in rows if r.get("event") == "config"]
            self._ids = cache
        return cache[plan.space]

    def generate(self, plan: SpacePlan, method: str, ratio: float, seed: int) -> dict:
        argv = [
            str(self.bin),
            "generate",
            "--space",
            str(REPO / plan.space),
            *self.common(),
            "--ratio",
            str(ratio),
            "--method",
            method,
            "--seed",
            str(seed),
            "--cache",
            str(self.run_dir / "cache"),
            "--report",
            "quiet",
        ]
        rows, wall = run_json_lines(argv)
        last = [r for r in rows if r.get("event") == "manifest"]
        if not last:
            raise RuntimeError(f"generate printed no manifest event: {' '.join(argv)}")
        m = json.loads(Path(last[-1]["path"]).read_text())
        row = {
            "space": plan.space,
            "method": method,
            "ratio": ratio,
            "seed": seed,
            "path": last[-1]["path"],
            "key": last[-1]["key"],
            "cache_hit": last[-1]["cache_hit"],
            "wall_s": wall,
            "stage_seconds": m.get("stage_seconds", {}),
            "probes": m.get("probes", []),
            "proxy_size": len(m.get("indices", [])) or sum(m.get("class_counts", [])),
            "time": now_utc(),
        }
        append_jsonl(self.gen_path, row)
        return row

    def evaluated(self, plan: SpacePlan) -> set[tuple[str, int, int]]:
        """(manifest key, epochs, seed) that have a record for every configuration."""
        ids = set(self.space_ids(plan))
        seen: dict[tuple[str, int, int], set[str]] = {}
        for r in read_jsonl(self.proxy_store(plan)):
            k = (r.get("manifest_key"), r["extra"]["epochs"], r["extra"]["train_seed"])
            seen.setdefault(k, set()).add(r["config_id"])
        return {k for k, v in seen.items() if ids <= v}

    def proxy_store(self, plan: SpacePlan) -> Path:
        return self.run_dir / Path(plan.space).stem / "proxy.jsonl"

    def block(self, plan: SpacePlan, seed: int) -> bool:
        """One seed of one space: every method x ratio proxy, trained at every length."""
        manifests = []
        for method in self.tier.methods:
            for ratio in plan.ratios:
                g = self.generate(plan, method, ratio, seed)
                manifests.append(g)
                log(
                    f"  generate {Path(plan.space).stem} {method} {ratio} seed {seed}: "
                    f"{g['wall_s']:.1f}s{' (cache hit)' if g['cache_hit'] else ''}"
                )
        epochs = space_epochs(REPO / plan.space)
        for name, mult in plan.lengths.items():
            e = max(1, int(round(epochs * mult)))
            done = self.evaluated(plan)
            pending = [
                g
                for g in manifests
                if (g["key"], e, seed) not in done
                and (
                    name == "paper"
                    or (
                        (not plan.long_ratios or g["ratio"] in plan.long_ratios)
                        and (not plan.long_methods or g["method"] in plan.long_methods)
                    )
                )
            ]
            if not pending:
                continue
            estimate = self.block_seconds.get((plan.space, name))
            if not self.fits(estimate):
                log(f"  skip {name} seed {seed}: would pass the deadline (est. {estimate:.0f}s)")
                self.skipped(plan, seed, name, estimate)
                return False
            argvs = []
            # A proxy's training cost grows with its ratio; the jobs get about equal shares.
            for part in split_balanced(pending, [g["ratio"] for g in pending], self.tier.jobs):
                argv = self.evaluate_argv(plan, seed, self.proxy_store(plan), "--epochs", str(e))
                for g in part:
                    argv += ["--manifest", g["path"]]
                argvs.append(argv)
            self.proxy_store(plan).parent.mkdir(parents=True, exist_ok=True)
            wall = run_parallel(argvs)
            self.block_seconds[(plan.space, name)] = wall * len(manifests) / len(pending)
            self.event(
                kind="proxy",
                space=plan.space,
                seed=seed,
                length=name,
                epochs=e,
                wall_s=wall,
                manifests=len(pending),
            )
            log(
                f"  evaluate {Path(plan.space).stem} {name} ({e} epochs) seed {seed}: "
                f"{len(pending)} proxies in {wall:.1f}s"
            )
        return True

    def extra_full_seed(self, seed: int) -> None:
        for plan in self.tier.spaces:
            full0 = read_jsonl(self.full_dir(plan, 0)[0] / "results.jsonl")
            estimate = sum(r["extra"]["total_seconds"] for r in full0) / self.tier.jobs + 10
            if self.fits(estimate):
                self.ensure_full(plan, seed)
            else:
                log(f"skip full data seed {seed} of {plan.space}: would pass the deadline")
                self.skipped(plan, seed, "full data", estimate)

    def run(self) -> None:
        plan_doc = {
            "tier": self.args.tier,
            "started": now_utc(),
            "data_root": self.data_root,
            "tier_settings": dataclasses.asdict(self.tier),
            "deadline": self.args.deadline,
            "git": git_commit(),
            "machine": machine_info(self.bin),
            "binary": str(self.bin),
        }
        plan_path = self.run_dir / "plan.json"
        if not plan_path.exists():
            plan_path.write_text(json.dumps(plan_doc, indent=2) + "\n")
        for plan in self.tier.spaces:
            self.ensure_full(plan, 0)
        # Seeds below priority_seeds run for every space first (interleaved), the rest space by
        # space: a deadline then cuts seeds from the last space, never a space entirely.
        order = [
            (seed, plan)
            for seed in range(self.tier.priority_seeds)
            for plan in self.tier.spaces
            if seed < plan.seeds
        ]
        # Extra full-data seeds (the full data's own noise: the ceiling any proxy can reach)
        # come right after the priority seeds; a `None` plan marks them in the order.
        order += [(-seed, None) for seed in range(1, self.tier.full_seeds)]
        order += [
            (seed, plan)
            for plan in self.tier.spaces
            for seed in range(self.tier.priority_seeds, plan.seeds)
        ]
        for seed, plan in order:
            if plan is None:
                self.extra_full_seed(-seed)
                continue
            estimate = self.block_total.get(plan.space)
            if not self.fits(estimate):
                log(f"skip {Path(plan.space).stem} seed {seed}: would pass the deadline")
                self.skipped(plan, seed, "all", estimate)
                continue
            start = time.monotonic()
            log(f"{Path(plan.space).stem} seed {seed}")
            ok = self.block(plan, seed)
            self.block_total[plan.space] = time.monotonic() - start
            self.event(
                kind="block",
                space=plan.space,
                seed=seed,
                complete=ok,
                wall_s=time.monotonic() - start,
            )
        self.event(kind="finished")


# ---------------------------------------------------------------------------------------------
# Analysis


def fmt(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def fmt_ci(s: dict, digits: int = 3) -> str:
    if s.get("mean") is None:
        return "undefined"
    text = f"{s['mean']:.{digits}f}"
    if s["n"] > 1:
        text += f" [{s['lo']:.{digits}f}, {s['hi']:.{digits}f}]"
    if s.get("undefined"):
        text += f" ({s['undefined']} undef.)"
    return text


def latest_by(records: list[dict], key) -> dict:
    out = {}
    for r in records:
        out[key(r)] = r
    return out


def analyse_space(run_dir: Path, plan: SpacePlan, tier: Tier, full_dirs: list[Path]) -> dict:
    stem = Path(plan.space).stem
    epochs = space_epochs(REPO / plan.space)
    length_of = {max(1, int(round(epochs * m))): n for n, m in plan.lengths.items()}
    full_recs = [
        latest_by(read_jsonl(d / "results.jsonl"), lambda r: r["config_id"])
        for d in full_dirs
        if (d / "results.jsonl").exists()
    ]
    ref = full_recs[0]
    ids = list(ref.keys())
    full = [ref[i]["full_accuracy"] for i in ids]
    res: dict = {
        "space": plan.space,
        "configs": ids,
        "full_accuracy": full,
        "full_dir": str(rel(full_dirs[0])),
        "macs": [ref[i]["macs"] for i in ids],
        "full_train_seconds": [ref[i]["full_seconds"] for i in ids],
        "full_total_seconds": [ref[i]["extra"]["total_seconds"] for i in ids],
    }
    if len(full_recs) > 1 and set(full_recs[1]) >= set(ids):
        other = [full_recs[1][i]["full_accuracy"] for i in ids]
        res["full_noise"] = {
            "seed1_accuracy": other,
            "metrics": analysis.ranking_metrics(full, other),
            "seed1_search_seconds": sum(full_recs[1][i]["full_seconds"] for i in ids),
        }

    proxies = latest_by(
        read_jsonl(run_dir / stem / "proxy.jsonl"),
        lambda r: (
            r["manifest_key"],
            r["extra"]["epochs"],
            r["extra"]["train_seed"],
            r["config_id"],
        ),
    )
    groups: dict[tuple[str, float, str], dict[int, dict[str, dict]]] = {}
    for r in proxies.values():
        e = r["extra"]
        length = length_of.get(e["epochs"], f"{e['epochs']}ep")
        groups.setdefault((e["method"], e["ratio"], length), {}).setdefault(e["sampling_seed"], {})[
            r["config_id"]
        ] = r
    gens = read_jsonl(run_dir / "generate.jsonl")
    gens = [g for g in gens if g["space"] == plan.space]

    # Probe costs: the probes' own training (recorded in every manifest of ours) and the
    # feature pass, measured where the probes were trained (the first `ours` generation).
    probe_s = 0.0
    features_s = 0.0
    probes = []
    for g in gens:
        if g["method"] == "ours" and g["probes"]:
            probes = g["probes"]
            probe_s = sum(p.get("train_seconds", 0) for p in probes)
            features_s = max(features_s, float(g["stage_seconds"].get("features", 0) or 0))
    res["probes"] = [
        {
            "config_id": p.get("config_id"),
            "macs": p.get("macs"),
            "accuracy": p.get("test_accuracy"),
            "train_seconds": p.get("train_seconds"),
        }
        for p in probes
    ]
    res["probe_seconds"] = probe_s
    res["feature_seconds"] = features_s
    full_search = sum(res["full_train_seconds"])
    full_search_wall = sum(res["full_total_seconds"])
    res["full_search_seconds"] = full_search
    res["full_search_wall_seconds"] = full_search_wall

    rows = []
    for (method, ratio, length), by_seed in sorted(
        groups.items(), key=lambda kv: (METHODS.index(kv[0][0]), -kv[0][1], kv[0][2])
    ):
        complete = {s: recs for s, recs in by_seed.items() if set(ids) <= set(recs)}
        if not complete:
            continue
        seeds = sorted(complete)
        per_seed = []
        for s in seeds:
            acc = [complete[s][i]["proxy_accuracy"] for i in ids]
            m = analysis.ranking_metrics(full, acc)
            m["seed"] = s
            m["proxy_accuracy"] = acc
            m["proxy_train_seconds"] = sum(complete[s][i]["proxy_seconds"] for i in ids)
            m["proxy_total_seconds"] = sum(complete[s][i]["extra"]["total_seconds"] for i in ids)
            sel = [
                g for g in gens if g["method"] == method and g["ratio"] == ratio and g["seed"] == s
            ]
            stages = sel[-1]["stage_seconds"] if sel else {}
            m["selection_seconds"] = sum(
                float(v or 0) for k, v in stages.items() if k not in ("probes", "features", "total")
            )
            m["generate_wall_seconds"] = sel[-1]["wall_s"] if sel else None
            per_seed.append(m)
        agg = {}
        for part in ("all", "top"):
            for c in ("kendall", "spearman", "pearson"):
                agg[f"{c}_{part}"] = analysis.bootstrap_mean([m[part][c] for m in per_seed])
        agg["regret_points"] = analysis.bootstrap_mean([m["regret_points"] for m in per_seed])
        agg["top1_kept"] = analysis.bootstrap_mean([float(m["top1_kept"]) for m in per_seed])

        def mean(k: str, rows: list[dict] = per_seed) -> float:
            return sum(m[k] for m in rows) / len(rows)

        proxy_search = mean("proxy_train_seconds")
        selection = mean("selection_seconds")
        fixed = selection + (probe_s + features_s if method == "ours" else 0.0)
        total = fixed + proxy_search
        n = len(ids)
        cost = {
            "proxy_search_seconds": proxy_search,
            "proxy_search_wall_seconds": mean("proxy_total_seconds"),
            "selection_seconds": selection,
            "probe_seconds": probe_s if method == "ours" else 0.0,
            "feature_seconds": features_s if method == "ours" else 0.0,
            "end_to_end_seconds": total,
            "speedup": full_search / total if total > 0 else None,
            "speedup_wall": full_search_wall / (fixed + mean("proxy_total_seconds")),
            "projected_speedup": {
                str(k): analysis.projected_speedup(k, full_search / n, proxy_search / n, fixed)
                for k in (12, 100, 1000)
            },
        }
        rows.append(
            {
                "method": method,
                "ratio": ratio,
                "length": length,
                "epochs": complete[seeds[0]][ids[0]]["extra"]["epochs"],
                "seeds": seeds,
                "per_seed": per_seed,
                "summary": agg,
                "cost": cost,
                "mean_proxy_accuracy": [
                    sum(m["proxy_accuracy"][j] for m in per_seed) / len(per_seed) for j in range(n)
                ],
            }
        )
    res["rows"] = rows

    comparisons = []
    for r in rows:
        if r["method"] != "ours":
            continue
        for base in ("random", "stratified"):
            b = next(
                (
                    x
                    for x in rows
                    if x["method"] == base
                    and x["ratio"] == r["ratio"]
                    and x["length"] == r["length"]
                ),
                None,
            )
            if not b:
                continue
            by_seed_b = {m["seed"]: m for m in b["per_seed"]}
            common = [m for m in r["per_seed"] if m["seed"] in by_seed_b]
            comp = {
                "ratio": r["ratio"],
                "length": r["length"],
                "baseline": base,
                "seeds": [m["seed"] for m in common],
            }
            for key, get in (
                ("kendall_all", lambda m: m["all"]["kendall"]),
                ("kendall_top", lambda m: m["top"]["kendall"]),
                ("spearman_all", lambda m: m["all"]["spearman"]),
                ("regret_points", lambda m: m["regret_points"]),
            ):
                comp[key] = analysis.bootstrap_difference(
                    [get(m) for m in common], [get(by_seed_b[m["seed"]]) for m in common]
                )
                comp[key]["cis_overlap"] = analysis.intervals_overlap(
                    r["summary"][key], b["summary"][key]
                )
            comparisons.append(comp)
    res["comparisons"] = comparisons
    res["goals"] = [{"goal": g, "measured": m, "met": ok} for g, m, ok in goals(res)]
    return res


def markdown_space(res: dict, tier: Tier, plan: SpacePlan) -> str:
    ids = res["configs"]
    full = res["full_accuracy"]
    order = sorted(range(len(ids)), key=lambda i: -full[i])
    rank = {i: k + 1 for k, i in enumerate(order)}
    out = [f"## {res['space']}", ""]
    out.append(
        f"Full-data reference: {res['full_dir']} (seed 0). Full search (12 trainings): "
        f"{res['full_search_seconds']:.1f} s of training, {res['full_search_wall_seconds']:.1f} s "
        "with evaluation. Probes (trained once, counted in every `ours` cost): "
        + ", ".join(
            f"{p['config_id']} {p['train_seconds']:.1f} s (acc {100 * p['accuracy']:.1f}%)"
            for p in res["probes"]
            if p["train_seconds"] is not None
        )
        + f"; feature pass {res['feature_seconds']:.1f} s."
    )
    out.append("")
    lengths = sorted(
        {r["length"] for r in res["rows"]},
        key=lambda n: list(plan.lengths).index(n) if n in plan.lengths else 99,
    )
    for length in lengths:
        rows = [r for r in res["rows"] if r["length"] == length]
        ep = rows[0]["epochs"] if rows else "?"
        out.append(
            f"### Table 1 ({length}: proxy trained {ep} epochs): test accuracy (%) per "
            "configuration, mean over seeds; Pearson r mean [95% bootstrap CI over seeds]"
        )
        out.append("")
        out.append(
            "| row | "
            + " | ".join(f"{c} (#{rank[i]})" for i, c in enumerate(ids))
            + " | Pearson r |"
        )
        out.append("|---" * (len(ids) + 2) + "|")
        out.append("| full | " + " | ".join(f"{100 * a:.1f}" for a in full) + " | 1 |")
        for r in rows:
            out.append(
                f"| {r['method']} {100 * r['ratio']:g}% (n={len(r['seeds'])}) | "
                + " | ".join(f"{100 * a:.1f}" for a in r["mean_proxy_accuracy"])
                + f" | {fmt_ci(r['summary']['pearson_all'])} |"
            )
        out.append("")
    out.append("### Ranking metrics: mean [95% bootstrap CI over seeds]")
    out.append("")
    out.append(
        "Top half = the 6 configurations with the best full-data accuracy. Regret = "
        "full accuracy of the true best minus that of the proxy's pick, in points "
        "(a tie for first counts the mean of the tied)."
    )
    out.append("")
    out.append(
        "| method | ratio | length | seeds | tau (all) | Spearman (all) | Pearson (all) "
        "| tau (top half) | Spearman (top half) | top-1 kept | regret (pts) |"
    )
    out.append("|---" * 11 + "|")
    for r in res["rows"]:
        s = r["summary"]
        kept = sum(1 for m in r["per_seed"] if m["top1_kept"])
        out.append(
            f"| {r['method']} | {100 * r['ratio']:g}% | {r['length']} | {len(r['seeds'])} "
            f"| {fmt_ci(s['kendall_all'])} | {fmt_ci(s['spearman_all'])} "
            f"| {fmt_ci(s['pearson_all'])} | {fmt_ci(s['kendall_top'])} "
            f"| {fmt_ci(s['spearman_top'])} | {kept}/{len(r['per_seed'])} "
            f"| {fmt_ci(s['regret_points'], 2)} |"
        )
    out.append("")
    if res["comparisons"]:
        out.append(
            "### Ours minus baseline, paired by seed: mean [95% CI]; do the two methods' "
            "own CIs overlap?"
        )
        out.append("")
        out.append(
            "| ratio | length | baseline | d tau (all) | d tau (top half) | d regret (pts, "
            "< 0 = ours better) | CIs overlap (tau all / top / regret) |"
        )
        out.append("|---" * 7 + "|")
        for c in res["comparisons"]:
            ov = "/".join(
                {True: "yes", False: "no", None: "n/a"}[c[k]["cis_overlap"]]
                for k in ("kendall_all", "kendall_top", "regret_points")
            )
            out.append(
                f"| {100 * c['ratio']:g}% | {c['length']} | {c['baseline']} "
                f"| {fmt_ci(c['kendall_all'])} | {fmt_ci(c['kendall_top'])} "
                f"| {fmt_ci(c['regret_points'], 2)} | {ov} |"
            )
        out.append("")
    out.append("### Cost ledger (seconds of training; means over seeds)")
    out.append("")
    out.append(
        "| method | ratio | length | probes | features | selection | proxy search "
        "| end to end | full search | speedup | speedup incl. eval | projected 100 "
        "| projected 1000 |"
    )
    out.append("|---" * 13 + "|")
    for r in res["rows"]:
        c = r["cost"]
        p = c["projected_speedup"]
        out.append(
            f"| {r['method']} | {100 * r['ratio']:g}% | {r['length']} "
            f"| {c['probe_seconds']:.1f} | {c['feature_seconds']:.1f} "
            f"| {c['selection_seconds']:.2f} | {c['proxy_search_seconds']:.1f} "
            f"| {c['end_to_end_seconds']:.1f} | {res['full_search_seconds']:.1f} "
            f"| {fmt(c['speedup'], 2)}x | {fmt(c['speedup_wall'], 2)}x "
            f"| {fmt(p['100'], 2)}x | {fmt(p['1000'], 2)}x |"
        )
    out.append("")
    checks = goals(res)
    if checks:
        out.append("### The issue's goals (set for CIFAR-10 ResNet20; checked here on this space)")
        out.append("")
        out.append("| goal | measured | met |")
        out.append("|---|---|---|")
        for goal, measured, met in checks:
            out.append(
                f"| {goal} | {measured} | {({True: 'yes', False: '**no**'}).get(met, 'n/a')} |"
            )
        out.append("")
    if "full_noise" in res:
        m = res["full_noise"]["metrics"]
        out.append(
            f"### The full data's own noise: full-data seed 1 against seed 0: tau "
            f"{fmt(m['all']['kendall'])}, Spearman {fmt(m['all']['spearman'])}, Pearson "
            f"{fmt(m['all']['pearson'])}; top half tau {fmt(m['top']['kendall'])}; "
            f"top-1 {'kept' if m['top1_kept'] else 'changed'} (regret "
            f"{m['regret_points']:.2f} pts). No proxy can be expected to beat this. "
            f"(The seed-1 full search took {res['full_noise']['seed1_search_seconds']:.1f} s of "
            f"training against seed 0's {res['full_search_seconds']:.1f} s: the same work, so "
            "the difference is timing noise on this machine, not the method.)"
        )
        out.append("")
    return "\n".join(out)


def goals(res: dict) -> list[tuple[str, str, bool | None]]:
    """The issue's goals (set for CIFAR-10 ResNet20 at 5%), checked on this space's numbers:
    (goal, what was measured, met)."""
    out = []
    rows = {(r["method"], r["ratio"], r["length"]): r for r in res["rows"]}
    ours = rows.get(("ours", 0.05, "paper"))
    rand = rows.get(("random", 0.05, "paper"))
    if ours:
        s = ours["summary"]
        n = len(ours["seeds"])
        tau, rho = s["kendall_all"]["mean"], s["spearman_all"]["mean"]
        out.append(("tau >= 0.85 at 5%", fmt_ci(s["kendall_all"]), tau is not None and tau >= 0.85))
        out.append(
            ("Spearman >= 0.95 at 5%", fmt_ci(s["spearman_all"]), rho is not None and rho >= 0.95)
        )
        kept = sum(1 for m in ours["per_seed"] if m["top1_kept"])
        out.append(("top-1 kept at 5% (every seed)", f"{kept}/{n} seeds", kept == n))
        c = ours["cost"]
        out.append(
            (
                "end-to-end speedup >= 3.5x at 5%, 12 configs",
                f"{fmt(c['speedup'], 2)}x",
                c["speedup"] is not None and c["speedup"] >= 3.5,
            )
        )
        p100 = c["projected_speedup"]["100"]
        out.append(
            (
                "projected speedup >= 12x for 100 candidates at 5%",
                f"{fmt(p100, 2)}x",
                p100 is not None and p100 >= 12,
            )
        )
    if ours and rand:
        for key, label, better in (
            ("kendall_top", "top-half tau", 1),
            ("regret_points", "regret", -1),
        ):
            a, b = ours["summary"][key], rand["summary"][key]
            if a["mean"] is None or b["mean"] is None:
                out.append((f"ours ahead of random on {label}, CIs apart", "undefined", None))
                continue
            ahead = (a["mean"] - b["mean"]) * better > 0
            apart = analysis.intervals_overlap(a, b) is False
            out.append(
                (
                    f"ours ahead of random on {label} at 5%, CIs apart",
                    f"ours {fmt_ci(a)} vs random {fmt_ci(b)}",
                    ahead and apart,
                )
            )
    worst = None
    for (method, ratio, length), r in rows.items():
        b = rows.get(("random", ratio, length))
        if method != "ours" or not b:
            continue
        a_t, b_t = r["summary"]["kendall_all"]["mean"], b["summary"]["kendall_all"]["mean"]
        if a_t is None or b_t is None:
            continue
        d = a_t - b_t
        if worst is None or d < worst[0]:
            worst = (d, ratio, length)
    if worst:
        out.append(
            (
                "tau over all candidates never below random by more than 0.02",
                f"worst ours - random: {worst[0]:+.3f} ({100 * worst[1]:g}%, {worst[2]})",
                worst[0] >= -0.02,
            )
        )
    return out


def plot_space(res: dict, path: Path) -> None:
    series = []
    for method in ("ours", "random", "stratified"):
        pts = []
        for r in res["rows"]:
            if r["method"] != method:
                continue
            s = r["summary"]["kendall_all"]
            pts.append(
                {
                    "x": r["cost"]["end_to_end_seconds"],
                    "y": s["mean"],
                    "lo": s["lo"],
                    "hi": s["hi"],
                    "label": f"{100 * r['ratio']:g}% {r['length']}",
                }
            )
        if pts:
            series.append(
                {
                    "name": method,
                    "color": COLORS[method],
                    "points": pts,
                    "marker": "circle" if method != "stratified" else "square",
                }
            )
    vlines = [(res["full_search_seconds"], "full-data search")]
    if res["probe_seconds"]:
        vlines.append((res["probe_seconds"] + res["feature_seconds"], "probes alone"))
    hlines = []
    if "full_noise" in res and res["full_noise"]["metrics"]["all"]["kendall"] is not None:
        hlines.append(
            (res["full_noise"]["metrics"]["all"]["kendall"], "full data, seed 1 vs seed 0")
        )
    path.write_text(
        svg.scatter(
            f"{Path(res['space']).stem}: Kendall tau vs total search cost (probes counted)",
            series,
            "end-to-end search cost (seconds of training, log scale)",
            "Kendall tau, all candidates (95% CI over seeds)",
            vlines,
            hlines,
        )
    )


def analyse(run_dir: Path, out_dir: Path, binary: Path | None, report: bool) -> Path:
    plan_doc = json.loads((run_dir / "plan.json").read_text())
    tier_name = plan_doc["tier"]
    tier = Tier.from_dict(plan_doc["tier_settings"])
    if not tier.publish:
        out_dir = run_dir
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M")
    spaces = []
    md = [f"# Ranking benchmark, tier {tier_name} ({now_utc()[:10]})", ""]
    deadline_text = f", deadline {plan_doc['deadline']} UTC" if plan_doc.get("deadline") else ""
    md.append(
        f"Run folder `{rel(run_dir)}`"
        f", commit {plan_doc['git']['commit'][:12]}"
        f"{' (with uncommitted changes)' if plan_doc['git']['dirty'] else ''}, "
        f"machine {plan_doc['machine']['cpu']} x {plan_doc['machine']['cores']} cores, "
        f"{plan_doc['machine']['dataproxy']}. Dataset {tier.dataset} (train slice "
        f"{tier.max_train or 'all'}, test slice {tier.max_test or 'all'}), {tier.jobs} "
        f"training(s) at a time with {tier.threads} thread(s) each, device {tier.device}. "
        f"Started {plan_doc['started']}"
        f"{deadline_text}."
    )
    md.append("")
    events = read_jsonl(run_dir / "events.jsonl")
    loads = [e["load_average"][0] for e in events if e.get("load_average")]
    if loads:
        md.append(
            f"Machine load (1-minute average at each step): mean {sum(loads) / len(loads):.1f}, "
            f"max {max(loads):.1f} on {plan_doc['machine']['cores']} cores; costs are honest only "
            "when this stays near the benchmark's own thread count."
        )
        md.append("")
    sittings = sitting_spans(events, tier.spaces[0].space if tier.spaces else "")
    if sittings:  # the first step's event comes at its end; the run began at `started`
        started = dt.datetime.fromisoformat(plan_doc["started"].replace("Z", "+00:00"))
        sittings[0] = (min(started, sittings[0][0]), sittings[0][1])
    if len(sittings) > 1 or (sittings and plan_doc.get("deadline")):
        md.append(
            f"Ran in {len(sittings)} sitting(s) (a later one resumes with `--run-dir`): "
            + "; ".join(
                f"{a:%H:%M:%S}-{b:%H:%M:%S} UTC ({(b - a).total_seconds() / 60:.1f} min)"
                for a, b in sittings
            )
            + "."
        )
        md.append("")
    # A block skipped at one sitting's deadline and run by a resumed sitting is not missing.
    ran = {
        (e["space"], e["seed"], e.get("length"))
        for e in events
        if e.get("kind") in ("proxy", "full") and not e.get("reused")
    }
    ran |= {
        (e["space"], e["seed"], "all")
        for e in events
        if e.get("kind") == "block" and e.get("complete")
    }
    ran |= {(e["space"], e["seed"], "full data") for e in events if e.get("kind") == "full"}
    skipped = [
        e
        for e in events
        if e.get("kind") == "skipped" and (e["space"], e["seed"], e["length"]) not in ran
    ]
    if skipped:
        md.append(
            "Not run (deadline): "
            + "; ".join(f"{Path(e['space']).stem} seed {e['seed']} {e['length']}" for e in skipped)
            + "."
        )
        md.append("")
    runner_stub = argparse.Namespace(deadline=None, data_root=None, tier=tier_name)
    for plan in tier.spaces:
        if not (run_dir / Path(plan.space).stem / "proxy.jsonl").exists():
            continue
        r = Runner(runner_stub, tier, run_dir, binary or find_binary(None))
        full_dirs = [r.full_dir(plan, s)[0] for s in range(tier.full_seeds)]
        res = analyse_space(run_dir, plan, tier, full_dirs)
        svg_path = out_dir / f"ranking_{tier_name}_{Path(plan.space).stem}_tau_vs_cost.svg"
        plot_space(res, svg_path)
        res["plot"] = str(rel(svg_path))
        if report and binary:
            res["report"] = run_report(run_dir, plan, res, binary, out_dir, tier_name)
        spaces.append(res)
        md.append(markdown_space(res, tier, plan))
        md.append(f"![tau vs cost]({svg_path.name})")
        md.append("")
    doc = {
        "tier": tier_name,
        "written": now_utc(),
        "plan": plan_doc,
        "spaces": spaces,
        "skipped": skipped,
        "bootstrap": {
            "resamples": analysis.BOOTSTRAP_RESAMPLES,
            "level": analysis.CI_LEVEL,
            "seed": analysis.BOOTSTRAP_SEED,
        },
    }
    json_path = out_dir / f"ranking_{tier_name}_{stamp}.json"
    json_path.write_text(json.dumps(doc, indent=1) + "\n")
    md_path = out_dir / f"ranking_{tier_name}_{stamp}.md"
    md_path.write_text("\n".join(md) + "\n")
    shutil.copyfile(md_path, out_dir / f"ranking_{tier_name}_latest.md")
    (out_dir / f"ranking_{tier_name}_readme_table.md").write_text(readme_table(doc))
    log(f"wrote {rel(md_path)} and {rel(json_path)}")
    return md_path


def sitting_spans(events: list[dict], first_space: str) -> list[tuple[dt.datetime, dt.datetime]]:
    """(start, end) of each `run` call on a run folder: each begins with the first space's
    seed-0 full-data step."""
    spans: list[list[dt.datetime]] = []
    for e in events:
        if "time" not in e:
            continue
        t = dt.datetime.fromisoformat(e["time"].replace("Z", "+00:00"))
        starts = e.get("kind") == "full" and e.get("space") == first_space and e.get("seed") == 0
        if starts or not spans:
            spans.append([t, t])
        else:
            spans[-1][1] = t
    return [(a, b) for a, b in spans]


def readme_table(doc: dict) -> str:
    lines = [
        f"Ranking benchmark, tier {doc['tier']}, {doc['written'][:10]} "
        f"(commit {doc['plan']['git']['commit'][:12]}): Kendall tau of the proxy ranking "
        "against full-data training, mean [95% CI over seeds]; speedup with probes counted.",
        "",
        "| space | ratio | length | seeds | tau ours | tau random | top-half tau ours "
        "| top-half tau random | regret ours / random (pts) | speedup ours | better |",
        "|---" * 11 + "|",
    ]
    for s in doc["spaces"]:
        for r in s["rows"]:
            if r["method"] != "ours":
                continue
            b = next(
                (
                    x
                    for x in s["rows"]
                    if x["method"] == "random"
                    and x["ratio"] == r["ratio"]
                    and x["length"] == r["length"]
                ),
                None,
            )
            if not b:
                continue
            o, q = r["summary"], b["summary"]
            to, tr = o["kendall_all"]["mean"], q["kendall_all"]["mean"]
            if to is None or tr is None:
                better = "n/a"
            elif analysis.intervals_overlap(o["kendall_all"], q["kendall_all"]) is False:
                better = "ours" if to > tr else "**random**"
            else:
                why = "CIs overlap" if len(r["seeds"]) > 1 else "one seed"
                better = f"ours ({why})" if to > tr else f"**random** ({why})" if tr > to else "tie"
            lines.append(
                f"| {Path(s['space']).stem} | {100 * r['ratio']:g}% | {r['length']} "
                f"| {len(r['seeds'])} | {fmt_ci(o['kendall_all'], 2)} "
                f"| {fmt_ci(q['kendall_all'], 2)} | {fmt_ci(o['kendall_top'], 2)} "
                f"| {fmt_ci(q['kendall_top'], 2)} | {fmt(o['regret_points']['mean'], 2)} / "
                f"{fmt(q['regret_points']['mean'], 2)} | {fmt(r['cost']['speedup'], 1)}x "
                f"| {better} |"
            )
    return "\n".join(lines) + "\n"


def run_report(
    run_dir: Path, plan: SpacePlan, res: dict, binary: Path, out_dir: Path, tier_name: str
) -> dict:
    """`dataproxy report` on one proxy (ours at 5%, or the ratio nearest to it; paper length;
    the first seed) together with the full-data records, which it reads as spot checks."""
    rows = [r for r in res["rows"] if r["method"] == "ours"]
    if not rows:
        return {"skipped": "no ours rows"}
    row = min(rows, key=lambda r: (abs(r["ratio"] - 0.05), r["length"] != "paper"))
    stem = Path(plan.space).stem
    recs = read_jsonl(run_dir / stem / "proxy.jsonl")
    seed = row["seeds"][0]
    recs = [
        r
        for r in recs
        if r["extra"]["method"] == "ours"
        and r["extra"]["ratio"] == row["ratio"]
        and r["extra"]["epochs"] == row["epochs"]
        and r["extra"]["train_seed"] == seed
    ]
    recs = list(latest_by(recs, lambda r: r["config_id"]).values())
    full_recs = read_jsonl(REPO / res["full_dir"] / "results.jsonl")
    exp = run_dir / "report_input" / stem
    exp.mkdir(parents=True, exist_ok=True)
    # The proxy's records and the full-data records as they are: the report merges them by
    # configuration, the full-data ones being spot checks.
    with (exp / "results.jsonl").open("w") as f:
        for r in recs + full_recs:
            f.write(json.dumps(r) + "\n")
    manifest = recs[0]["extra"]["manifest"] if recs else None
    target = out_dir / f"ranking_{tier_name}_{stem}_report"
    argv = [str(binary), "report", "--results", str(exp), "--out", str(target)]
    if manifest:
        argv += ["--manifest", manifest]
    proc = subprocess.run(argv, capture_output=True, text=True)
    return {
        "argv": argv,
        "exit_code": proc.returncode,
        "out": str(rel(target)),
        "stderr": proc.stderr[-2000:],
        "ratio": row["ratio"],
        "length": row["length"],
        "seed": seed,
    }


# ---------------------------------------------------------------------------------------------
# CIFAR-10 in parts, for machines that take uploads of limited size


def pack_data(root: Path, out: Path, part_mib: int) -> None:
    src = root / "cifar-10-batches-bin"
    if not src.is_dir():
        src = root
    blob = b"".join((src / name).read_bytes() for name in CIFAR10_MD5)
    out.mkdir(parents=True, exist_ok=True)
    size = part_mib * 1024 * 1024
    parts = []
    for k in range(0, len(blob), size):
        p = out / f"part-{k // size + 1:02d}"
        p.mkdir(exist_ok=True)
        (p / "cifar10.part").write_bytes(blob[k : k + size])
        parts.append(p.name)
    (out / "index.json").write_text(
        json.dumps(
            {
                "files": list(CIFAR10_MD5),
                "sizes": [(src / n).stat().st_size for n in CIFAR10_MD5],
                "md5": CIFAR10_MD5,
                "parts": parts,
            },
            indent=1,
        )
        + "\n"
    )
    print(f"{len(parts)} parts of at most {part_mib} MiB in {out}")


def unpack_data(parts: Path, root: Path) -> None:
    index = json.loads((parts / "index.json").read_text())
    blob = b"".join((parts / p / "cifar10.part").read_bytes() for p in index["parts"])
    dest = root / "cifar-10-batches-bin"
    dest.mkdir(parents=True, exist_ok=True)
    at = 0
    for name, size in zip(index["files"], index["sizes"]):
        data = blob[at : at + size]
        at += size
        digest = hashlib.md5(data).hexdigest()
        if digest != CIFAR10_MD5[name]:
            sys.exit(
                f"unpack-data: {name} has md5 {digest}, expected {CIFAR10_MD5[name]}; "
                "a part is missing or damaged: upload the parts again"
            )
        (dest / name).write_bytes(data)
    print(f"CIFAR-10 verified and written to {dest}")


# ---------------------------------------------------------------------------------------------


def main() -> None:
    # SIGTERM ends the benchmark like Ctrl-C, so that the running child is killed with it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run a tier, then analyse it")
    r.add_argument("--tier", choices=sorted(TIERS), default="cpu")
    r.add_argument("--bin", help="dataproxy binary (default: build/ or build-ranking/)")
    r.add_argument("--run-dir", help="resume this run folder instead of starting a new one")
    r.add_argument("--data-root", help="dataset folder when the tier's default is missing")
    r.add_argument("--deadline", help="HH:MM UTC: start nothing that would end later")
    r.add_argument("--seeds", type=int, help="override the seeds of every space")
    r.add_argument("--threads", type=int, help="override the tier's CPU threads")
    r.add_argument("--jobs", type=int, help="override the tier's trainings at once")
    r.add_argument("--spaces", help="comma-separated YAML stems to run (default: the tier's)")
    r.add_argument("--no-report", action="store_true", help="skip `dataproxy report`")
    a = sub.add_parser("analyse", help="tables, plot and report from a run folder")
    a.add_argument("run_dir")
    a.add_argument("--bin")
    a.add_argument("--no-report", action="store_true")
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
        pack_data(Path(args.root), Path(args.out), args.part_mib)
        return
    if args.command == "unpack-data":
        unpack_data(Path(args.parts), Path(args.root))
        return
    binary = find_binary(args.bin)
    if args.command == "analyse":
        out = Path(args.out).resolve()
        out.mkdir(parents=True, exist_ok=True)
        analyse(Path(args.run_dir).resolve(), out, binary, not args.no_report)
        return

    tier = TIERS[args.tier]
    if args.threads is not None:
        tier.threads = args.threads
    if args.jobs is not None:
        if args.jobs < 1:
            sys.exit("run.py: --jobs must be 1 or more")
        tier.jobs = args.jobs
    if args.seeds is not None:
        for plan in tier.spaces:
            plan.seeds = args.seeds
    if args.spaces:
        wanted = set(args.spaces.split(","))
        tier.spaces = [p for p in tier.spaces if Path(p.space).stem in wanted]
    run_dir = (
        Path(args.run_dir)
        if args.run_dir
        else WORK / (f"{args.tier}-{dt.datetime.now(dt.timezone.utc).strftime('%Y%m%d-%H%M%S')}")
    )
    run_dir = run_dir.resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    log(f"run folder {run_dir}")
    if args.run_dir and (run_dir / "plan.json").exists():
        tier = Tier.from_dict(json.loads((run_dir / "plan.json").read_text())["tier_settings"])
    runner = Runner(args, tier, run_dir, binary)
    runner.run()
    analyse(run_dir, RESULTS, binary, not args.no_report)


if __name__ == "__main__":
    main()
