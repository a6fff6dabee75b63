"""Search spaces from the project's YAML files, for the Python adapters (NNI, Optuna).

The C++ side (``dataproxy/search_space.h``) is the authority on what a space means; this module
reads the same file far enough to hand the tuners their parameters, and refuses a file that the
C++ side would refuse for its shape (unknown keys, empty or duplicated choices, named choices
without values). Family-specific checks stay in C++.

    space = load_space("search_spaces/resnet_tiny.yaml")
    space.to_optuna()   # {"B": CategoricalDistribution([8, 16]), ...}
    space.to_nni()      # {"B": {"_type": "choice", "_value": [8, 16]}, ...}
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = ["Parameter", "SearchSpace", "SpaceError", "load_space", "parse_space"]

_TOP_KEYS = {"name", "family", "notes", "parameters", "model", "torchscript", "training"}
_PARAMETER_KEYS = {"name", "choices", "values", "description"}
_FAMILIES = {"resnet", "efficientnet", "torchscript"}

Choice = Any  # int, float or str, as written in the file


class SpaceError(ValueError):
    """A search-space file that cannot be used; the message names the file, key and value."""


@dataclass(frozen=True)
class Parameter:
    """One categorical parameter of a space."""

    name: str
    choices: tuple[Choice, ...]
    #: For named choices: name -> what the model builder receives (e.g. a list per stage).
    values: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""


@dataclass(frozen=True)
class SearchSpace:
    """A parsed search space: its name, model family and categorical parameters."""

    name: str
    family: str
    parameters: tuple[Parameter, ...]
    #: Where it was read from (file path or a label); used in messages.
    origin: str = "<text>"

    @property
    def size(self) -> int:
        """Number of configurations."""
        n = 1
        for p in self.parameters:
            n *= len(p.choices)
        return n

    def parameter(self, name: str) -> Parameter:
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(name)

    def enumerate(self) -> Iterator[dict[str, Choice]]:
        """Every configuration, parameters varying in file order (last fastest)."""
        names = [p.name for p in self.parameters]
        for combo in itertools.product(*(p.choices for p in self.parameters)):
            yield dict(zip(names, combo))

    def grid(self) -> dict[str, list[Choice]]:
        """Parameter name -> list of choices (the form of Optuna's GridSampler)."""
        return {p.name: list(p.choices) for p in self.parameters}

    def to_optuna(self) -> dict[str, Any]:
        """Optuna distributions, one CategoricalDistribution per parameter."""
        from optuna.distributions import CategoricalDistribution

        return {p.name: CategoricalDistribution(list(p.choices)) for p in self.parameters}

    def to_nni(self) -> dict[str, dict[str, Any]]:
        """NNI search-space JSON: {"B": {"_type": "choice", "_value": [8, 16, 32]}, ...}."""
        return {p.name: {"_type": "choice", "_value": list(p.choices)} for p in self.parameters}

    def validate(self, params: Mapping[str, Any]) -> dict[str, Choice]:
        """Checks that `params` sets every parameter to one of its choices and nothing else."""
        unknown = sorted(set(params) - {p.name for p in self.parameters})
        if unknown:
            raise SpaceError(
                f"{self.origin}: unknown parameter(s) {unknown}; the space has "
                f"{[p.name for p in self.parameters]}"
            )
        out: dict[str, Choice] = {}
        for p in self.parameters:
            if p.name not in params:
                raise SpaceError(f"{self.origin}: parameter {p.name!r} is missing")
            value = params[p.name]
            if not any(_same_choice(value, c) for c in p.choices):
                raise SpaceError(
                    f"{self.origin}: parameter {p.name!r} = {value!r} is not one of "
                    f"{list(p.choices)}"
                )
            out[p.name] = value
        return out


def load_space(path: str | Path) -> SearchSpace:
    """Reads a search-space YAML file; raises SpaceError saying what is wrong and where."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpaceError(
            f"search space {str(path)!r} does not exist; pass a YAML file such as "
            "search_spaces/resnet_tiny.yaml"
        ) from None
    except OSError as e:
        raise SpaceError(f"search space {str(path)!r} cannot be read: {e.strerror}") from None
    return parse_space(text, str(path))


def parse_space(text: str, origin: str = "<text>") -> SearchSpace:
    """Parses search-space YAML text; `origin` names it in error messages."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        where = ""
        mark = getattr(e, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise SpaceError(f"{origin}: not valid YAML{where}: {problem}") from None
    if not isinstance(doc, dict):
        raise SpaceError(f"{origin}: expected a mapping with keys name, family, parameters")
    unknown = sorted(str(k) for k in doc if k not in _TOP_KEYS)
    if unknown:
        raise SpaceError(f"{origin}: unknown key(s) {unknown}; known keys are {sorted(_TOP_KEYS)}")
    name = _required_text(doc, "name", origin)
    family = _required_text(doc, "family", origin)
    if family not in _FAMILIES:
        raise SpaceError(
            f"{origin}: family {family!r} is not known; use one of {sorted(_FAMILIES)}"
        )
    raw = doc.get("parameters")
    if not isinstance(raw, list) or not raw:
        raise SpaceError(f"{origin}: 'parameters' must be a non-empty list")
    params: list[Parameter] = []
    seen: set[str] = set()
    for i, entry in enumerate(raw):
        p = _parse_parameter(entry, f"{origin}: parameters[{i}]")
        if p.name in seen:
            raise SpaceError(f"{origin}: parameters[{i}]: name {p.name!r} appears twice")
        seen.add(p.name)
        params.append(p)
    return SearchSpace(name=name, family=family, parameters=tuple(params), origin=origin)


def _required_text(doc: dict, key: str, origin: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value.strip():
        raise SpaceError(f"{origin}: {key!r} is required and must be text (got {value!r})")
    return value


def _parse_parameter(entry: Any, where: str) -> Parameter:
    if not isinstance(entry, dict):
        raise SpaceError(f"{where}: expected a mapping with 'name' and 'choices'")
    unknown = sorted(str(k) for k in entry if k not in _PARAMETER_KEYS)
    if unknown:
        raise SpaceError(f"{where}: unknown key(s) {unknown}; known: {sorted(_PARAMETER_KEYS)}")
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise SpaceError(f"{where}: 'name' is required and must be text (got {name!r})")
    where = f"{where} ({name})"
    choices = entry.get("choices")
    if not isinstance(choices, list) or not choices:
        raise SpaceError(f"{where}: 'choices' must be a non-empty list (got {choices!r})")
    for c in choices:
        if isinstance(c, bool) or not isinstance(c, (int, float, str)):
            raise SpaceError(f"{where}: choice {c!r} must be a number or a name")
    for a, b in itertools.combinations(choices, 2):
        if _same_choice(a, b):
            raise SpaceError(f"{where}: choice {a!r} appears twice")
    values = entry.get("values") or {}
    if not isinstance(values, dict):
        raise SpaceError(f"{where}: 'values' must map each named choice to its value")
    for c in choices:
        if isinstance(c, str) and c not in values:
            raise SpaceError(
                f"{where}: named choice {c!r} has no entry under 'values'; add "
                f"'values: {{{c}: ...}}'"
            )
    description = entry.get("description") or ""
    return Parameter(
        name=name,
        choices=tuple(choices),
        values=dict(values),
        description=str(description),
    )


def _same_choice(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return False
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    return type(a) is type(b) and a == b
