"""Search spaces for the Python adapters (NNI, Optuna), as the `dataproxy` program reads them.

The C++ side (``dataproxy/search_space.h``) is the authority: ``load_space`` asks
``dataproxy space FILE --json`` for the parsed, checked space (family checks included) and never
reads the YAML itself, so a file the program refuses is refused here with its message.

    space = load_space("search_spaces/resnet_tiny.yaml")
    space.to_optuna()   # {"B": CategoricalDistribution([8, 16]), ...}
    space.to_nni()      # {"B": {"_type": "choice", "_value": [8, 16]}, ...}
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import SpaceError

__all__ = ["Parameter", "SearchSpace", "SpaceError", "TorchScriptBlock", "load_space"]

Choice = Any  # int, float or str, as the program gives it

#: The document format `dataproxy space --json` writes, and the version this module reads.
FORMAT, VERSION = "dataproxy-space", 1


@dataclass(frozen=True)
class Parameter:
    """One parameter of a space (every parameter is categorical: `type` is "choice")."""

    name: str
    choices: tuple[Choice, ...]
    #: For named choices: name -> what the model builder receives (e.g. a list per stage).
    values: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    type: str = "choice"


@dataclass(frozen=True)
class TorchScriptBlock:
    """Family torchscript: where the user's networks come from (paths absolute)."""

    module: str
    function: str
    exports: str
    seed: int
    module_sha256: str


@dataclass(frozen=True)
class SearchSpace:
    """A space as `dataproxy space FILE --json` describes it."""

    name: str
    family: str
    parameters: tuple[Parameter, ...]
    #: Where it was read from (the file's absolute path); used in messages.
    origin: str = "<text>"
    #: Fixed family settings, the family's defaults filled in (the `model:` key).
    model: Mapping[str, Any] = field(default_factory=dict)
    #: Training settings shared by every candidate (epochs, batch_size, optimizer, ...).
    training: Mapping[str, Any] = field(default_factory=dict)
    #: The `torchscript:` block; None for the built-in families.
    torchscript: TorchScriptBlock | None = None
    notes: str = ""
    #: The program's hash of the space's content (part of proxy cache keys).
    content_hash: str = ""
    #: The program's own exports, kept as it wrote them.
    nni: Mapping[str, Any] = field(default_factory=dict)
    optuna: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> SearchSpace:
        """From the document `dataproxy space FILE --json` prints."""
        if doc.get("format") != FORMAT or doc.get("version") != VERSION:
            raise SpaceError(
                f"`dataproxy space --json` wrote format {doc.get('format')!r} version "
                f"{doc.get('version')!r}; this package reads {FORMAT!r} version {VERSION}: "
                "use the dataproxy program built from the same checkout"
            )
        ts = doc.get("torchscript")
        return cls(
            name=doc["name"],
            family=doc["family"],
            parameters=tuple(
                Parameter(
                    name=p["name"],
                    choices=tuple(p["choices"]),
                    values=dict(p.get("values") or {}),
                    description=p.get("description", ""),
                    type=p.get("type", "choice"),
                )
                for p in doc["parameters"]
            ),
            origin=doc.get("file", "<text>"),
            model=dict(doc.get("model") or {}),
            training=dict(doc.get("training") or {}),
            torchscript=TorchScriptBlock(**ts) if ts else None,
            notes=doc.get("notes", ""),
            content_hash=doc.get("content_hash", ""),
            nni=dict(doc.get("nni") or {}),
            optuna=dict(doc.get("optuna") or {}),
        )

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
        """Every configuration, parameters varying in file order (last fastest), as
        `dataproxy space FILE --enumerate` lists them."""
        names = [p.name for p in self.parameters]
        for combo in itertools.product(*(p.choices for p in self.parameters)):
            yield dict(zip(names, combo))

    def grid(self) -> dict[str, list[Choice]]:
        """Parameter name -> list of choices (the form of Optuna's GridSampler)."""
        return {p.name: list(p.choices) for p in self.parameters}

    def to_optuna(self) -> dict[str, Any]:
        """Optuna distributions, from the program's export."""
        from optuna.distributions import json_to_distribution

        return {name: json_to_distribution(json.dumps(d)) for name, d in self.optuna.items()}

    def to_nni(self) -> dict[str, dict[str, Any]]:
        """NNI search-space JSON: {"B": {"_type": "choice", "_value": [8, 16, 32]}, ...}."""
        return json.loads(json.dumps(self.nni))


def load_space(path: str | os.PathLike, binary: str | None = None) -> SearchSpace:
    """The space of a YAML file, parsed and checked by `dataproxy space FILE --json`; raises
    SpaceError with the program's message (file, key, value, what to do)."""
    from .commands import space_document

    return SearchSpace.from_document(space_document(path, binary))
