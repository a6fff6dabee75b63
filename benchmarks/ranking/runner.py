"""Runs a tier with the project's own commands: the reference (full data, several training
seeds, kept with its settings under benchmarks/results/ranking_cache/), then for each proxy seed
every arm's proxies (`dataproxy generate`) and trainings (`dataproxy evaluate`), including the
full data with as many steps as each proxy. Everything resumes: a unit of work whose records
are all present is not run again, and a partly done one trains only its missing configurations.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import plan as planmod
import tool
from plan import FULL_STEPS, SpacePlan, Tier
from util import (
    REFERENCE_CACHE,
    append_jsonl,
    git_commit,
    log,
    machine_info,
    now_utc,
    read_jsonl,
    repo_path,
)

ROLES = ("convergence", "reference")  # of a full-data reference training


@dataclasses.dataclass(frozen=True)
class Unit:
    """One `dataproxy evaluate` call."""

    kind: str  # "reference", "proxy" or FULL_STEPS
    space: str
    seed: int  # training seed
    store: str  # results.jsonl the records go to
    configs: tuple[str, ...]
    cost: float  # training image passes (estimate, for scheduling and the deadline)
    label: str
    epochs: int = 0
    steps: int = 0
    manifest: str = ""


def split(u: Unit, parts: int) -> list[Unit]:
    """`u` as up to `parts` units over interleaved configurations (the enumeration order tends
    to grow in size), each charged its share of the cost."""
    n = max(1, min(parts, len(u.configs)))
    if n == 1:
        return [u]
    return [
        dataclasses.replace(
            u,
            configs=u.configs[j::n],
            cost=u.cost * len(u.configs[j::n]) / len(u.configs),
            label=f"{u.label} part {j + 1}/{n}",
        )
        for j in range(n)
    ]


def record_identity(r: dict) -> tuple:
    """What a record of proxy.jsonl belongs to: a proxy training or a full-data-steps one."""
    e = tool.record_extra(r)
    if e.get("data") == "full":
        return (FULL_STEPS, int(e.get("steps", 0)), int(e["train_seed"]))
    return ("proxy", r.get("manifest_key"), int(e["epochs"]), int(e["train_seed"]))


class Runner:
    def __init__(
        self,
        tier: Tier,
        tier_name: str,
        run_dir: Path,
        binary: Path,
        deadline: str | None = None,
        data_root: str | None = None,
    ):
        self.tier = tier
        self.tier_name = tier_name
        self.run_dir = run_dir
        self.bin = str(binary)
        self.deadline_text = deadline
        self.deadline = parse_deadline(deadline)
        self.data_root = self._data_root(data_root)
        self.arms = planmod.arms(tool.methods(self.bin))
        self.main = planmod.main_arm(self.arms)
        self.events = run_dir / "events.jsonl"
        self.gen_path = run_dir / "generate.jsonl"
        self.lock = threading.Lock()
        self.passes_done = 0.0  # image passes / wall seconds of finished units, per job
        self.seconds_done = 0.0
        self.skipped_any = False

    # -- settings ----------------------------------------------------------------------------

    def _data_root(self, explicit: str | None) -> str:
        if explicit:
            return explicit
        for r in self.tier.data_roots:
            if repo_path(r).exists():
                return str(repo_path(r))
        sys.exit(
            f"run.py: no data for {self.tier.dataset} in {self.tier.data_roots}; fetch it with "
            f"`dataproxy fetch-data {self.tier.dataset}` or pass --data-root"
        )

    def common(self) -> list[str]:
        argv = ["--dataset", self.tier.dataset, "--data-root", self.data_root]
        if self.tier.max_train:
            argv += ["--max-train", str(self.tier.max_train)]
        if self.tier.max_test:
            argv += ["--max-test", str(self.tier.max_test)]
        return argv + ["--threads", str(self.tier.threads)]

    def ids(self, plan: SpacePlan) -> list[str]:
        return list(tool.config_ids(self.bin, str(repo_path(plan.space))))

    def event(self, **kw) -> None:
        kw["time"] = now_utc()
        kw["load_average"] = os.getloadavg()  # other work on the machine distorts the seconds
        with self.lock:
            append_jsonl(self.events, kw)

    # -- the reference -----------------------------------------------------------------------

    def reference_dir(self, plan: SpacePlan, seed: int, epochs: int) -> tuple[Path, dict]:
        """The cache folder of one full-data training seed, keyed by everything that decides it."""
        space = repo_path(plan.space)
        settings = {
            "schema": 2,
            "space_file_sha256": hashlib.sha256(space.read_bytes()).hexdigest(),
            "space": plan.space,
            "dataset": self.tier.dataset,
            "max_train": self.tier.max_train,
            "max_test": self.tier.max_test,
            "epochs": epochs,
            "seed": seed,
            "threads": self.tier.threads,
            "device": self.tier.device,
            "record_correct": True,
            "tool": tool.version(self.bin),
        }
        key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
        root = REFERENCE_CACHE if self.tier.publish else self.run_dir / "reference_cache"
        return root / f"{planmod.stem(plan.space)}-e{epochs}-s{seed}-{key}", settings

    def reference_runs(self, plan: SpacePlan) -> list[tuple[int, int, str]]:
        """(seed, epochs, role) of every full-data training the space's reference needs."""
        e = planmod.reference_epochs(self.tier, plan)
        runs = [(s, e, "reference") for s in self.tier.reference_seeds]
        # The convergence check first: it says whether the length is worth the other seeds.
        if self.tier.convergence_seed is not None:
            runs.insert(0, (self.tier.convergence_seed, 2 * e, "convergence"))
        return runs

    def reference_units(self, plan: SpacePlan, roles: tuple[str, ...] = ROLES) -> list[Unit]:
        ids = self.ids(plan)
        units = []
        for seed, epochs, role in self.reference_runs(plan):
            if role not in roles:
                continue
            d, settings = self.reference_dir(plan, seed, epochs)
            store = d / "results.jsonl"
            done = {
                r["config_id"]
                for r in read_jsonl(store)
                if r.get("full_accuracy") is not None and tool.record_extra(r).get("correct_bits")
            }
            missing = [i for i in ids if i not in done]
            if not missing:
                continue
            d.mkdir(parents=True, exist_ok=True)
            (d / "settings.json").write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")
            # What trained it (not part of the key): commit, working tree, binary.
            append_jsonl(
                d / "provenance.jsonl",
                {
                    "time": now_utc(),
                    "git": git_commit(),
                    "binary": self.bin,
                    "binary_sha256": tool.binary_sha256(self.bin),
                    "configs": missing,
                },
            )
            whole = Unit(
                "reference",
                plan.space,
                seed,
                str(store),
                tuple(missing),
                float(len(missing) * self.n_train() * epochs),
                f"{planmod.stem(plan.space)} {role} seed {seed} ({epochs} epochs)",
                epochs=epochs,
            )
            units += split(whole, self.tier.jobs)
        return units

    def n_train(self) -> int:
        if self.tier.max_train:
            return self.tier.max_train
        return {"cifar10": 50000, "fashion-mnist": 60000}.get(self.tier.dataset, 50000)

    # -- proxies -----------------------------------------------------------------------------

    def generate(self, plan: SpacePlan, arm: planmod.Arm, ratio: float, seed: int) -> dict:
        from dataproxy.commands import GenerateOptions, generate_argv  # util set sys.path

        argv = generate_argv(
            self.bin,
            GenerateOptions(
                space=str(repo_path(plan.space)),
                dataset=self.tier.dataset,
                data_root=self.data_root,
                ratio=ratio,
                method=str(arm.method),
                seed=seed,
                selection_split=self.tier.selection_split,
                selection_fraction=self.tier.selection_fraction,
                max_train=self.tier.max_train,
                max_test=self.tier.max_test,
                probe_epochs=planmod.reference_epochs(self.tier, plan),
                cache=str(self.run_dir / "cache"),
                threads=self.tier.threads,
                extra=tuple(arm.generate_args),
            ),
        )
        rows, wall = tool.run_json_lines(argv)
        last = [r for r in rows if isinstance(r, dict) and r.get("event") == "manifest"]
        if not last:
            raise RuntimeError(f"generate printed no manifest event: {' '.join(argv)}")
        path = last[-1]["path"]
        m = json.loads(Path(path).read_text())
        row = {
            "space": plan.space,
            "arm": arm.name,
            "method": arm.method,
            "ratio": ratio,
            "seed": seed,
            "path": path,
            "key": last[-1]["key"],
            "cache_hit": last[-1].get("cache_hit"),
            "wall_s": wall,
            "stage_seconds": m.get("stage_seconds", {}),
            "probes": m.get("probes", []),
            "settings": m.get("settings", {}),
            "selection": m.get("selection", {}),
            "proxy_size": sum(m.get("class_counts", [])) or len(m.get("indices", [])),
            "class_counts": m.get("class_counts", []),
            "time": now_utc(),
            "load_average": os.getloadavg(),
        }
        with self.lock:
            append_jsonl(self.gen_path, row)
        log(
            f"  generate {planmod.stem(plan.space)} {arm.name} {ratio:g} seed {seed}: "
            f"{wall:.1f}s{' (cache hit)' if row['cache_hit'] else ''}"
        )
        return row

    def proxy_store(self, plan: SpacePlan) -> Path:
        return self.run_dir / planmod.stem(plan.space) / "proxy.jsonl"

    def done(self, plan: SpacePlan) -> dict[tuple, set[str]]:
        seen: dict[tuple, set[str]] = {}
        for r in read_jsonl(self.proxy_store(plan)):
            seen.setdefault(record_identity(r), set()).add(r["config_id"])
        return seen

    def block(
        self, plan: SpacePlan, seed: int, ratios: tuple[float, ...], lengths: tuple[str, ...]
    ) -> None:
        """One proxy seed of one space: every arm at these ratios and lengths."""
        proxy_arms = [a for a in self.arms if a.kind == "proxy"]
        wanted = [
            (a, r) for a in proxy_arms for r in ratios if any(plan.runs(a, r, n) for n in lengths)
        ]
        # The first generation trains the probes (cached for every later one); the rest run in
        # parallel jobs.
        gens: dict[tuple[str, float], dict] = {}
        first = next(((a, r) for a, r in wanted if a == self.main), None)
        if first:
            gens[(first[0].name, first[1])] = self.generate(plan, first[0], first[1], seed)
        rest = [(a, r) for a, r in wanted if (a.name, r) not in gens]
        with ThreadPoolExecutor(max(1, self.tier.jobs)) as pool:
            futures = {(a.name, r): pool.submit(self.generate, plan, a, r, seed) for a, r in rest}
            for k, f in futures.items():
                gens[k] = f.result()

        ids = self.ids(plan)
        done = self.done(plan)
        bs = planmod.space_training(plan.space)["batch_size"]
        store = str(self.proxy_store(plan))
        units: dict[tuple, Unit] = {}
        for length in lengths:
            e = planmod.length_epochs(self.tier, plan, length)
            for ratio in ratios:
                for arm in self.arms:
                    if not plan.runs(arm, ratio, length):
                        continue
                    if arm.kind == "proxy":
                        g = gens[(arm.name, ratio)]
                        ident: tuple = ("proxy", g["key"], e, seed)
                        per_config = g["proxy_size"] * e
                        kw = {"epochs": e, "manifest": g["path"]}
                    else:
                        k = planmod.proxy_steps(planmod.proxy_size(ratio, self.n_train()), bs, e)
                        ident = (FULL_STEPS, k, seed)
                        per_config = k * bs
                        kw = {"steps": k}
                    missing = tuple(i for i in ids if i not in done.get(ident, set()))
                    if not missing or ident in units:
                        continue  # done, or the same training serves another row (same steps)
                    units[ident] = Unit(
                        arm.kind,
                        plan.space,
                        seed,
                        store,
                        missing,
                        float(per_config * len(missing)),
                        f"{planmod.stem(plan.space)} {arm.name} {100 * ratio:g}% {length} "
                        f"seed {seed}",
                        **kw,
                    )
        Path(store).parent.mkdir(parents=True, exist_ok=True)
        # Each arm in `jobs` interleaved shares: with whole arms (5 at 5%) on 2 jobs the last one
        # ran alone, a fifth of the block's wall time on one core.
        self.run_units([part for u in units.values() for part in split(u, self.tier.jobs)])

    # -- running units -----------------------------------------------------------------------

    def evaluate_argv(self, u: Unit) -> list[str]:
        argv = [
            self.bin,
            "evaluate",
            "--space",
            str(repo_path(u.space)),
            *self.common(),
            "--seed",
            str(u.seed),
            "--device",
            self.tier.device,
            "--results",
            u.store,
            "--record-correct",
            "--report",
            "quiet",
        ]
        if u.manifest:
            argv += ["--manifest", u.manifest]
        argv += ["--steps", str(u.steps)] if u.steps else ["--epochs", str(u.epochs)]
        return argv + ["--configs", json.dumps(list(u.configs))]

    def estimate(self, u: Unit) -> float | None:
        with self.lock:
            if self.seconds_done <= 0:
                return None
            return u.cost / (self.passes_done / self.seconds_done)

    def run_unit(self, u: Unit) -> None:
        est = self.estimate(u)
        if self.deadline is not None and est is not None and time.time() + est > self.deadline:
            log(f"  skip {u.label}: would pass the deadline (est. {est:.0f}s)")
            self.skipped_any = True
            self.event(kind="skipped", unit=u.label, space=u.space, seed=u.seed, estimate_s=est)
            return
        start = now_utc()
        _, wall = tool.run_json_lines(self.evaluate_argv(u))
        with self.lock:
            self.passes_done += u.cost
            self.seconds_done += wall
        self.event(
            kind=u.kind,
            unit=u.label,
            space=u.space,
            seed=u.seed,
            epochs=u.epochs,
            steps=u.steps,
            configs=len(u.configs),
            cost_passes=u.cost,
            started=start,
            wall_s=wall,
        )
        log(f"  {u.label}: {len(u.configs)} trainings in {wall:.1f}s")

    def run_units(self, units: list[Unit]) -> None:
        """The units on `jobs` workers, the largest first (they finish at about the same time)."""
        units = sorted(units, key=lambda u: -u.cost)
        with ThreadPoolExecutor(max(1, self.tier.jobs)) as pool:
            for f in [pool.submit(self.run_unit, u) for u in units]:
                f.result()

    # -- the whole tier ----------------------------------------------------------------------

    def write_plan(self) -> None:
        path = self.run_dir / "plan.json"
        if path.exists():
            return
        doc = {
            "tier": self.tier_name,
            "started": now_utc(),
            "data_root": self.data_root,
            "tier_settings": dataclasses.asdict(self.tier),
            "deadline": self.deadline_text,
            "git": git_commit(),
            "machine": machine_info(tool.version(self.bin)),
            "binary": self.bin,
            "binary_sha256": tool.binary_sha256(self.bin),
            "methods": list(tool.methods(self.bin)),
            "arms": [dataclasses.asdict(a) for a in self.arms],
            "main_arm": self.main.name,
            "steps": {
                p.space: planmod.steps_table(self.tier, p, self.n_train()) for p in self.tier.spaces
            },
        }
        path.write_text(json.dumps(doc, indent=2) + "\n")

    def run(self, reference_only: bool = False, check_last: bool = False) -> None:
        """Reference, then proxies. `check_last` trains the convergence check after the proxies:
        for a length chosen on other grounds, the seeds and proxies are the verdict."""
        self.write_plan()
        self.event(kind="sitting", deadline=self.deadline_text)
        first = ("reference",) if check_last else ROLES
        self.run_reference(first)
        if not reference_only:
            self.run_proxies()
        if check_last:
            self.run_reference(("convergence",))
        self.event(kind="finished", complete=not self.skipped_any)

    def run_reference(self, roles: tuple[str, ...]) -> None:
        for plan in self.tier.spaces:
            units = self.reference_units(plan, roles)
            name = "/".join(roles)
            if units:
                log(f"{name} {planmod.stem(plan.space)}: {len(units)} units")
            else:
                log(f"{name} {planmod.stem(plan.space)}: cached")
            self.run_units(units)

    def run_proxies(self) -> None:
        # Phase by phase (plan.phases: the verdict's rows first), each over every seed, the
        # seeds interleaved over the spaces: a deadline cuts seeds, never a space entirely.
        n_phases = max((len(planmod.phases(p)) for p in self.tier.spaces), default=0)
        for k in range(n_phases):
            for seed in range(max((p.seeds for p in self.tier.spaces), default=0)):
                for plan in self.tier.spaces:
                    phase = planmod.phases(plan)
                    if seed >= plan.seeds or k >= len(phase):
                        continue
                    ratios, lengths = phase[k]
                    label = f"{'/'.join(f'{100 * r:g}%' for r in ratios)} {'/'.join(lengths)}"
                    log(f"{planmod.stem(plan.space)} seed {seed}: {label}")
                    start = time.monotonic()
                    self.block(plan, seed, ratios, lengths)
                    self.event(
                        kind="block",
                        space=plan.space,
                        seed=seed,
                        phase=label,
                        wall_s=time.monotonic() - start,
                    )


def parse_deadline(text: str | None) -> float | None:
    if not text:
        return None
    today = dt.datetime.now(dt.timezone.utc)
    hh, mm = (int(x) for x in text.split(":"))
    t = today.replace(hour=hh, minute=mm, second=0, microsecond=0)
    if t < today - dt.timedelta(hours=12):
        t += dt.timedelta(days=1)
    return t.timestamp()


def reference_stores(runner: Runner, plan: SpacePlan) -> list[tuple[int, int, str, Path]]:
    """(seed, epochs, role, results.jsonl) of the space's reference trainings."""
    return [
        (s, e, role, runner.reference_dir(plan, s, e)[0] / "results.jsonl")
        for s, e, role in runner.reference_runs(plan)
    ]
