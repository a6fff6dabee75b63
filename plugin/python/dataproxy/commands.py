"""What the `dataproxy` program itself says, for the adapters and the benchmarks.

The C++ library is the authority on names (selection methods); Python asks it rather than
keeping a copy that could drift.
"""

from __future__ import annotations

import functools
import json
import subprocess
from dataclasses import dataclass

from .binaries import find_binary

__all__ = ["MethodInfo", "check_method", "method_names", "selection_methods"]


@dataclass(frozen=True)
class MethodInfo:
    """A proxy selection method as `dataproxy methods --json` lists it."""

    name: str
    needs_probes: bool
    summary: str


@functools.cache
def selection_methods(binary: str | None = None) -> tuple[MethodInfo, ...]:
    """Every selection method, the default first (runs `dataproxy methods --json` once)."""
    argv = [find_binary("dataproxy", binary), "methods", "--json"]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"`{' '.join(argv)}` failed (exit {done.returncode}): {done.stderr.strip()[-500:]}"
        )
    return tuple(
        MethodInfo(m["name"], bool(m["needs_probes"]), m["summary"])
        for m in json.loads(done.stdout)
    )


def method_names(binary: str | None = None) -> tuple[str, ...]:
    return tuple(m.name for m in selection_methods(binary))


def check_method(name: str, binary: str | None = None) -> None:
    """Raises ValueError naming the known methods when `name` is not one of them."""
    names = method_names(binary)
    if name not in names:
        hint = " ('ours' is now called 'importance')" if name == "ours" else ""
        known = ", ".join(names)
        raise ValueError(f"selection method {name!r} is unknown; use one of {known}{hint}")
