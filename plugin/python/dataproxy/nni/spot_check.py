"""Spot-check policies of the NNI tuner: which trials also train on the full data.

A spot check costs one full-data training and gives one (proxy, full) accuracy pair for the rank
correlation that says whether the proxy can be trusted. Two rules, combinable:

- ``fraction``: each proposal of the wrapped tuner is a spot check with this probability, drawn
  from ``seed`` and the NNI parameter id (the same seed picks the same ids in every run).
- ``top_k``: once ``min_results`` proxy results are in, the best ``top_k`` configurations by proxy
  accuracy that have no full-data accuracy yet are *re-issued* as spot checks, one new trial each,
  instead of asking the wrapped tuner. These are the candidates a search would hand over, so their
  full-data accuracy is the one that matters most. Each re-issue spends one trial of the budget.

A configuration is spot-checked at most once: a proposal whose configuration already has (or is
getting) a full-data accuracy is not picked again.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "CompositeSpotCheck",
    "FractionSpotCheck",
    "NoSpotCheck",
    "SpotCheckPolicy",
    "TopKSpotCheck",
    "config_key",
    "make_policy",
]

SPOT_CHECK_KEYS = {"fraction", "seed", "top_k", "min_results"}


def config_key(params: dict[str, Any]) -> str:
    """A stable text key of a configuration (its parameters, sorted)."""
    return json.dumps(params, sort_keys=True)


@runtime_checkable
class SpotCheckPolicy(Protocol):
    """Decides spot checks for the tuner; see the module's text for the rules."""

    def choose(self, parameter_id: int, params: dict[str, Any]) -> bool:
        """Whether the wrapped tuner's proposal `params` (NNI id `parameter_id`) is a spot check."""

    def reissue(self) -> dict[str, Any] | None:
        """A configuration to run again as a spot check now, or None."""

    def observe(self, params: dict[str, Any], proxy_accuracy: float, spot_checked: bool) -> None:
        """A trial's final result: its configuration, proxy accuracy, and whether it had a
        full-data accuracy."""


class NoSpotCheck:
    """No spot checks (the probes still give the correlation two points)."""

    def choose(self, parameter_id: int, params: dict[str, Any]) -> bool:
        return False

    def reissue(self) -> dict[str, Any] | None:
        return None

    def observe(self, params: dict[str, Any], proxy_accuracy: float, spot_checked: bool) -> None:
        pass


@dataclass
class FractionSpotCheck:
    """A seeded fraction of the wrapped tuner's proposals."""

    fraction: float
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError(f"spot_check.fraction={self.fraction} must be in [0, 1]")

    def choose(self, parameter_id: int, params: dict[str, Any]) -> bool:
        if self.fraction <= 0.0:
            return False
        draw = random.Random(f"dataproxy-nni-spot-check:{self.seed}:{parameter_id}").random()
        return draw < self.fraction

    def reissue(self) -> dict[str, Any] | None:
        return None

    def observe(self, params: dict[str, Any], proxy_accuracy: float, spot_checked: bool) -> None:
        pass


@dataclass
class TopKSpotCheck:
    """Re-issues the best proxy configurations without a full-data accuracy as spot checks."""

    top_k: int
    min_results: int = 4
    _best: dict[str, tuple[float, dict[str, Any]]] = field(default_factory=dict)
    _issued: set[str] = field(default_factory=set)
    _results: int = 0

    def __post_init__(self) -> None:
        if self.top_k < 0:
            raise ValueError(f"spot_check.top_k={self.top_k} must be >= 0")
        if self.min_results < 1:
            raise ValueError(f"spot_check.min_results={self.min_results} must be >= 1")

    def choose(self, parameter_id: int, params: dict[str, Any]) -> bool:
        return False

    def reissue(self) -> dict[str, Any] | None:
        if self.top_k == 0 or self._results < self.min_results:
            return None
        ranked = sorted(self._best.items(), key=lambda item: -item[1][0])
        for key, (_, params) in ranked[: self.top_k]:
            if key not in self._issued:
                self._issued.add(key)
                return dict(params)
        return None

    def observe(self, params: dict[str, Any], proxy_accuracy: float, spot_checked: bool) -> None:
        self._results += 1
        key = config_key(params)
        if spot_checked:
            self._issued.add(key)
        best = self._best.get(key)
        if best is None or proxy_accuracy > best[0]:
            self._best[key] = (proxy_accuracy, dict(params))


@dataclass
class CompositeSpotCheck:
    """Any member picks a proposal; the first member with a re-issue gives it."""

    policies: list[SpotCheckPolicy]

    def choose(self, parameter_id: int, params: dict[str, Any]) -> bool:
        return any(p.choose(parameter_id, params) for p in self.policies)

    def reissue(self) -> dict[str, Any] | None:
        for p in self.policies:
            params = p.reissue()
            if params is not None:
                return params
        return None

    def observe(self, params: dict[str, Any], proxy_accuracy: float, spot_checked: bool) -> None:
        for p in self.policies:
            p.observe(params, proxy_accuracy, spot_checked)


def make_policy(spec: dict[str, Any] | None) -> SpotCheckPolicy:
    """The policy for the tuner's ``spot_check`` classArg, e.g.
    ``{"fraction": 0.2, "seed": 0, "top_k": 2, "min_results": 4}``; None or {} gives no spot
    checks. Unknown keys raise ValueError."""
    if not spec:
        return NoSpotCheck()
    if not isinstance(spec, dict):
        raise ValueError(f"spot_check must be a mapping with keys {sorted(SPOT_CHECK_KEYS)}")
    unknown = set(spec) - SPOT_CHECK_KEYS
    if unknown:
        raise ValueError(
            f"spot_check has unknown keys {sorted(unknown)}; known: {sorted(SPOT_CHECK_KEYS)}"
        )
    fraction = FractionSpotCheck(float(spec.get("fraction", 0.0)), int(spec.get("seed", 0)))
    top = TopKSpotCheck(int(spec.get("top_k", 0)), int(spec.get("min_results", 4)))
    policies: list[SpotCheckPolicy] = []
    if fraction.fraction > 0.0:
        policies.append(fraction)
    if top.top_k > 0:
        policies.append(top)
    if not policies:
        return NoSpotCheck()
    return policies[0] if len(policies) == 1 else CompositeSpotCheck(policies)
