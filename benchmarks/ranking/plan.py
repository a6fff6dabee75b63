"""What a tier runs: data slice, spaces, reference seeds, proxy seeds, ratios, lengths, and the
methods compared (from the C++ list, plus the full data with fewer steps).

Pure: no process is started here. benchmarks/ranking/README.md explains every choice.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
from pathlib import Path

from util import repo_path

FULL_STEPS = "full-steps"  # EcoNAS's alternative: the full data, as many steps as the proxy
PAPER = "paper"


@dataclasses.dataclass(frozen=True)
class Arm:
    """One method of the comparison, as the benchmark runs it."""

    name: str  # the benchmark's name (the C++ method name, or with a variant suffix)
    kind: str  # "proxy" (dataproxy generate) or FULL_STEPS (full data, --steps)
    method: str | None = None  # the C++ method name
    generate_args: tuple[str, ...] = ()
    needs_probes: bool = False


def arms(cpp_methods: list[dict] | tuple[dict, ...]) -> list[Arm]:
    """The arms compared, from `dataproxy methods --json`: every method with its defaults; a
    method that needs probes (the importance method) also with its global draw (its default is
    the per-class draw); and the full data with fewer steps. The first arm that needs probes,
    with its defaults, is the one the benchmark tests against every other."""
    out = []
    for m in cpp_methods:
        probes = bool(m.get("needs_probes"))
        out.append(Arm(m["name"], "proxy", m["name"], (), probes))
        if probes:
            out.append(Arm(f"{m['name']}-global", "proxy", m["name"], ("--draw", "global"), True))
    out.append(Arm(FULL_STEPS, FULL_STEPS))
    return out


def main_arm(all_arms: list[Arm]) -> Arm:
    return next(a for a in all_arms if a.needs_probes and not a.generate_args)


@dataclasses.dataclass
class SpacePlan:
    """What to run for one search space."""

    space: str  # YAML path, relative to the repository
    seeds: int  # proxy seeds 0..seeds-1 (sampling, selection split and proxy training)
    ratios: tuple[float, ...]
    lengths: dict[str, float]  # name -> proxy epochs as a multiple of the reference's epochs
    # Lengths other than the paper's only for these ratios / arms (empty = all).
    long_ratios: tuple[float, ...] = ()
    long_arms: tuple[str, ...] = ()
    # Variants of a method (the global draw) only at these ratios (empty = all).
    variant_ratios: tuple[float, ...] = ()
    # False: run and reported, but not evidence for the verdict (say why in the README).
    evidence: bool = True

    def runs(self, arm: Arm, ratio: float, length: str) -> bool:
        if arm.generate_args and self.variant_ratios and ratio not in self.variant_ratios:
            return False
        if length == PAPER:
            return True
        if self.long_ratios and ratio not in self.long_ratios:
            return False
        return not self.long_arms or arm.name in self.long_arms


@dataclasses.dataclass
class Tier:
    dataset: str
    data_roots: list[str]  # the first existing one is used
    max_train: int  # 0 = all
    max_test: int
    threads: int
    device: str
    spaces: list[SpacePlan]
    reference_seeds: tuple[int, ...] = (1001, 1002, 1003)  # disjoint from the proxy seeds
    convergence_seed: int | None = 1001  # also trained at twice the epochs (convergence check)
    epochs: int = 0  # reference (and paper-length proxy) epochs; 0 = the space's
    jobs: int = 1  # trainings at once, each with `threads` threads
    selection_split: str = "half-test"
    selection_fraction: float = 0.5
    publish: bool = True  # results and the reference cache in benchmarks/results

    @staticmethod
    def from_dict(d: dict) -> Tier:
        d = dict(d)
        d["spaces"] = [
            SpacePlan(
                **{
                    **p,
                    "ratios": tuple(p["ratios"]),
                    "long_ratios": tuple(p.get("long_ratios", ())),
                    "long_arms": tuple(p.get("long_arms", ())),
                    "variant_ratios": tuple(p.get("variant_ratios", ())),
                }
            )
            for p in d["spaces"]
        ]
        d["reference_seeds"] = tuple(d["reference_seeds"])
        return Tier(**d)


def phases(plan: SpacePlan) -> list[tuple[tuple[float, ...], tuple[str, ...]]]:
    """(ratios, lengths) in the order the proxy work runs, each phase over every seed before the
    next: the 5% proxies at the paper's length (the verdict's rows) first, then everything else
    seed by seed. A deadline, an interruption or a loaded machine then leaves the verdict's
    rows with the most seeds and every other row with the same, smaller, set of seeds."""
    key = 0.05 if 0.05 in plan.ratios else plan.ratios[0]
    out = [((key,), (PAPER,))]
    if len(plan.ratios) > 1 or len(plan.lengths) > 1:
        out.append((plan.ratios, tuple(plan.lengths)))
    return out


@functools.cache
def space_training(space: str) -> dict:
    """The space's epochs and batch size, as the `dataproxy` program reads them (`dataproxy
    space FILE --json`; the program is found as dataproxy.binaries.find_binary finds it: the
    space's meaning does not depend on the binary under test, which may be a fake)."""
    from dataproxy.space import load_space  # after util put plugin/python on sys.path

    t = load_space(repo_path(space)).training
    return {"epochs": int(t["epochs"]), "batch_size": int(t["batch_size"])}


def reference_epochs(tier: Tier, plan: SpacePlan) -> int:
    return tier.epochs or space_training(plan.space)["epochs"]


def length_epochs(tier: Tier, plan: SpacePlan, length: str) -> int:
    return max(1, int(round(reference_epochs(tier, plan) * plan.lengths[length])))


def proxy_size(ratio: float, n_train: int) -> int:
    """Samples a proxy keeps (the per-class counts are adjusted to sum to this)."""
    return int(round(ratio * n_train))


def proxy_steps(size: int, batch_size: int, epochs: int) -> int:
    """Optimizer steps of `epochs` epochs over `size` samples (the last batch may be partial)."""
    return epochs * math.ceil(size / batch_size)


def steps_table(tier: Tier, plan: SpacePlan, n_train: int) -> list[dict]:
    """Per ratio and length: proxy size, epochs, optimizer steps and image passes per training."""
    bs = space_training(plan.space)["batch_size"]
    rows = []
    for ratio in plan.ratios:
        size = proxy_size(ratio, n_train)
        for length in plan.lengths:
            if length != PAPER and plan.long_ratios and ratio not in plan.long_ratios:
                continue
            e = length_epochs(tier, plan, length)
            rows.append(
                {
                    "ratio": ratio,
                    "length": length,
                    "epochs": e,
                    "proxy_size": size,
                    "steps": proxy_steps(size, bs, e),
                    "image_passes": size * e,
                }
            )
    return rows


PAPER_RATIOS = (0.1, 0.05, 0.02)
FMNIST_ROOTS = ["data/fashion-mnist", "/usr/share/datasets/fashion-mnist"]
SPACES = "benchmarks/ranking/spaces"

TIERS = {
    # Fashion-MNIST, the size space (accuracy grows with size). 8,000 / 2,000 images, 8 epochs,
    # batch 16: a 5% proxy (400 images) gets 8 x 25 = 200 optimizer steps at the paper's length.
    "cpu": Tier(
        dataset="fashion-mnist",
        data_roots=FMNIST_ROOTS,
        max_train=8000,
        max_test=2000,
        threads=1,
        jobs=2,
        device="cpu",
        spaces=[
            SpacePlan(
                f"{SPACES}/fmnist_size.yaml",
                10,
                PAPER_RATIOS,
                {PAPER: 1, "long": 2},
                long_ratios=(0.05,),
            ),
        ],
    ),
    # The paper's data on 2 cores: a CIFAR-10 slice and a small ResNet space whose accuracy
    # grows with size (run 2026-11-30; its reference is not converged either).
    "cpu-cifar10": Tier(
        dataset="cifar10",
        data_roots=["data"],
        max_train=4800,
        max_test=2000,
        threads=1,
        jobs=2,
        device="cpu",
        spaces=[
            SpacePlan(
                f"{SPACES}/cifar10_size.yaml",
                10,
                PAPER_RATIOS,
                {PAPER: 1, "long": 2},
                long_ratios=(0.05,),
                long_arms=("importance", "random", FULL_STEPS),
                variant_ratios=(0.05,),
            ),
        ],
    ),
    # A two-minute check of the whole pipeline (not evidence: tiny data, one epoch).
    "smoke": Tier(
        dataset="fashion-mnist",
        data_roots=FMNIST_ROOTS,
        max_train=2000,
        max_test=500,
        threads=1,
        jobs=2,
        device="cpu",
        spaces=[
            SpacePlan(
                f"{SPACES}/fmnist_size.yaml", 2, (0.1,), {PAPER: 1, "long": 2}, evidence=False
            ),
        ],
        reference_seeds=(1001, 1002),
        epochs=1,
        publish=False,
    ),
    # The paper's protocol on CIFAR-10 (CUDA; not run in these sessions).
    "gpu": Tier(
        dataset="cifar10",
        data_roots=["data"],
        max_train=0,
        max_test=0,
        threads=0,
        device="cuda",
        spaces=[
            SpacePlan("search_spaces/resnet20.yaml", 10, PAPER_RATIOS, {PAPER: 1, "long": 3}),
            SpacePlan("search_spaces/efficientnet_b0.yaml", 3, (0.1, 0.05), {PAPER: 1}),
        ],
    ),
}

# The cpu tier with a reference near convergence: 32 epochs instead of the space's 8 (at 16
# epochs the smallest networks still gained up to 3.4 points at 32; the wider ones were flat).
# The proxies' paper length follows (32 epochs, 800 steps at 5%), the long one is 64. A deep copy:
# run.py adjusts a tier's jobs, threads and seeds in place.
TIERS["cpu-converged"] = dataclasses.replace(copy.deepcopy(TIERS["cpu"]), epochs=32)

# The cpu-cifar10 tier near convergence: 40 epochs (from 10 to 20 every network gained 5-9
# points, from 20 to 40 another 2.4-7.8). Its first reference seed is the 40-epoch run trained as
# the 20-epoch definition's convergence check (the same cache key); its own check is 80 epochs.
TIERS["cpu-cifar10-converged"] = dataclasses.replace(copy.deepcopy(TIERS["cpu-cifar10"]), epochs=40)


def stem(space: str) -> str:
    return Path(space).stem
