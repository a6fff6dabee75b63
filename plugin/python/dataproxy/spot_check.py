"""Spot checks: which trials also train on the full data, for both adapters (NNI and Optuna).

A spot check costs one full-data training and gives one (proxy, full) accuracy pair for the rank
correlation that says whether the proxy can be trusted. A policy is a small object the adapter
asks, per trial, with the trial's number (Optuna's trial number, NNI's parameter id):

- ``choose(number, params)``: is this proposal a spot check? The rules, combinable:
  ``fraction`` (each number with this probability, drawn from ``seed`` and the number alone,
  so every worker of a distributed study agrees without talking to the others), ``first``
  (numbers 0 .. N-1) and ``every`` (numbers 0, N, 2N, ...).
- ``reissue()``: a configuration to run again as a spot check now (``top_k``: once
  ``min_results`` proxy results are in, the best ``top_k`` configurations by proxy accuracy that
  have no full-data accuracy yet; these are the candidates a search would hand over). Adapters
  that cannot insert trials (Optuna's workers) refuse ``top_k``.
- ``observe(params, proxy_accuracy, spot_checked)``: a trial's final result.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Protocol, runtime_checkable

from .errors import InvalidInput

__all__ = ["NoSpotCheck", "SpotCheck", "SpotCheckPolicy", "config_key", "policy_from_spec"]


def config_key(params: Mapping[str, Any]) -> str:
    """A stable text key of a configuration (its parameters, sorted)."""
    return json.dumps(dict(params), sort_keys=True)


@runtime_checkable
class SpotCheck(Protocol):
    """What an adapter asks; see the module's text."""

    def choose(self, number: int, params: Mapping[str, Any]) -> bool: ...

    def reissue(self) -> dict[str, Any] | None: ...

    def observe(
        self, params: Mapping[str, Any], proxy_accuracy: float, spot_checked: bool
    ) -> None: ...


@dataclass
class SpotCheckPolicy:
    """The rules of the module's text; a trial is a spot check when any rule picks it.
    The fields are the NNI tuner's ``spot_check`` keys and the Optuna CLI's --spot-check-*."""

    #: Probability that a trial number is picked, decided from `seed` and the number (0 = none).
    fraction: float = 0.0
    #: Seed of the fraction rule; the same seed picks the same numbers in every run.
    seed: int = 0
    #: Every N-th trial (numbers 0, N, 2N, ...) is picked; 0 = off.
    every: int = 0
    #: The first N trials (numbers 0 .. N-1) are picked; 0 = none.
    first: int = 0
    #: Re-issue the best `top_k` proxy configurations without a full-data accuracy; 0 = off.
    top_k: int = 0
    #: Proxy results needed before `top_k` re-issues anything.
    min_results: int = 4
    _best: dict[str, tuple[float, dict[str, Any]]] = field(default_factory=dict, repr=False)
    _issued: set[str] = field(default_factory=set, repr=False)
    _results: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.fraction <= 1.0:
            raise InvalidInput(f"spot-check fraction {self.fraction} must be in [0, 1]")
        for name in ("every", "first", "top_k"):
            if getattr(self, name) < 0:
                raise InvalidInput(
                    f"spot-check {name} {getattr(self, name)} must be >= 0 (0 = off)"
                )
        if self.min_results < 1:
            raise InvalidInput(f"spot-check min_results {self.min_results} must be >= 1")

    def choose(self, number: int, params: Mapping[str, Any]) -> bool:
        if number < self.first:
            return True
        if self.every and number % self.every == 0:
            return True
        if self.fraction <= 0.0:
            return False
        # A string seed hashes with SHA-512: the same on every machine and Python run.
        return random.Random(f"dataproxy-spot-check:{self.seed}:{number}").random() < self.fraction

    def reissue(self) -> dict[str, Any] | None:
        if self.top_k == 0 or self._results < self.min_results:
            return None
        ranked = sorted(self._best.items(), key=lambda item: -item[1][0])
        for key, (_, params) in ranked[: self.top_k]:
            if key not in self._issued:
                self._issued.add(key)
                return dict(params)
        return None

    def observe(self, params: Mapping[str, Any], proxy_accuracy: float, spot_checked: bool) -> None:
        self._results += 1
        key = config_key(params)
        if spot_checked:
            self._issued.add(key)
        best = self._best.get(key)
        if best is None or proxy_accuracy > best[0]:
            self._best[key] = (proxy_accuracy, dict(params))


class NoSpotCheck(SpotCheckPolicy):
    """No trial trains on the full data (the probes still give the correlation two points)."""

    def __init__(self) -> None:
        super().__init__()


SPEC_KEYS = tuple(f.name for f in fields(SpotCheckPolicy) if not f.name.startswith("_"))


def policy_from_spec(spec: Mapping[str, Any] | None, where: str = "spot_check") -> SpotCheckPolicy:
    """The policy of a mapping such as the NNI tuner's ``spot_check`` classArg,
    ``{"fraction": 0.2, "seed": 0, "top_k": 2, "min_results": 4}``; None or {} gives no spot
    checks. Unknown keys and bad values raise InvalidInput naming them."""
    if not spec:
        return NoSpotCheck()
    if not isinstance(spec, Mapping):
        raise InvalidInput(f"{where} must be a mapping with keys among {list(SPEC_KEYS)}")
    unknown = sorted(set(spec) - set(SPEC_KEYS))
    if unknown:
        raise InvalidInput(f"{where} has unknown keys {unknown}; known: {list(SPEC_KEYS)}")
    try:
        values = {k: (float(v) if k == "fraction" else int(v)) for k, v in spec.items()}
    except (TypeError, ValueError):
        raise InvalidInput(f"{where}: {dict(spec)} must hold numbers") from None
    return SpotCheckPolicy(**values)
