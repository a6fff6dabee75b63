"""Spot-check policies: which trials also train on the full data.

A spot check costs a full-data training, and gives one (proxy, full) accuracy pair for the rank
correlation that says whether the proxy can be trusted. A policy decides from the trial number
alone, so every worker of a distributed study agrees without talking to the others.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["NoSpotCheck", "SpotCheck", "SpotCheckPolicy"]


@runtime_checkable
class SpotCheck(Protocol):
    """Anything that says, from a trial number, whether that trial is a spot check."""

    def should_check(self, trial_number: int) -> bool: ...


@dataclass(frozen=True)
class SpotCheckPolicy:
    """A seeded fraction of the trials, plus the first few, plus every N-th.

    A trial is a spot check when any of the three rules picks it.
    """

    #: Probability that a trial is picked, decided per trial number from `seed` (0 = none).
    fraction: float = 0.0
    #: Every N-th trial (numbers 0, N, 2N, ...) is picked; 0 = off.
    every: int = 0
    #: The first N trials (numbers 0 .. N-1) are picked; 0 = none.
    first: int = 0
    #: Seed of the fraction rule; the same seed picks the same trial numbers.
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError(f"spot-check fraction {self.fraction} must be in [0, 1]")
        if self.every < 0:
            raise ValueError(f"spot-check every {self.every} must be >= 0 (0 = off)")
        if self.first < 0:
            raise ValueError(f"spot-check first {self.first} must be >= 0")

    def should_check(self, trial_number: int) -> bool:
        if trial_number < self.first:
            return True
        if self.every and trial_number % self.every == 0:
            return True
        if self.fraction <= 0.0:
            return False
        # A string seed hashes with SHA-512: the same on every machine and Python run.
        draw = random.Random(f"dataproxy-spot-check:{self.seed}:{trial_number}").random()
        return draw < self.fraction


@dataclass(frozen=True)
class NoSpotCheck:
    """No trial trains on the full data."""

    def should_check(self, trial_number: int) -> bool:
        return False
