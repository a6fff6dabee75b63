"""What the `dataproxy` program itself says, for the adapters and the benchmarks.

The C++ library is the authority on names (selection methods); Python asks it rather than
keeping a copy that could drift.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
from dataclasses import dataclass

from .binaries import find_binary

__all__ = [
    "Calibration",
    "bottom_line",
    "MethodInfo",
    "calibrate_argv",
    "check_method",
    "method_names",
    "run_calibration",
    "selection_methods",
]


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


@dataclass(frozen=True)
class Calibration:
    """What `dataproxy calibrate` chose, and where its evidence is."""

    method: str
    ratio: float
    length: float  # proxy epochs as a multiple of the full-data epochs
    epochs: int  # proxy training epochs
    manifest: str  # the chosen choice's seed-0 proxy (the search trains on it)
    recommended: bool  # False: no choice met the target; this is the best one found
    path: str  # calibration.json
    summary: str  # the table and verdict calibrate printed


def calibrate_argv(
    binary: str,
    *,
    space: str,
    dataset: str,
    data_root: str,
    out: str,
    results: str,
    expected_trials: int,
    seed: int = 0,
    max_train: int = 0,
    max_test: int = 0,
    epochs: int = 0,
    cache: str | None = None,
    threads: int = 0,
    device: str = "auto",
    selection_split: str = "half-test",
    extra: list[str] | None = None,
) -> list[str]:
    """The `dataproxy calibrate` command line (an argv list, never a shell string)."""
    argv = [binary, "calibrate", "--space", space, "--dataset", dataset, "--data-root", data_root]
    argv += ["--out", out, "--results", results, "--expected-trials", str(expected_trials)]
    argv += ["--seed", str(seed), "--device", device, "--selection-split", selection_split]
    argv += ["--report", "jsonl"]
    for flag, value in (
        ("--max-train", max_train),
        ("--max-test", max_test),
        ("--epochs", epochs),
        ("--threads", threads),
    ):
        if value:
            argv += [flag, str(value)]
    if cache:
        argv += ["--cache", cache]
    return argv + list(extra or [])


def run_calibration(argv: list[str], *, log=None) -> Calibration:
    """Runs `dataproxy calibrate` and returns its choice: the recommended one, or the best one
    found when none met the target (`recommended` is then False)."""
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if log is not None:
        for line in done.stdout.splitlines():
            if line.startswith("{") and '"message"' in line:
                log(json.loads(line).get("text", ""))
    if done.returncode != 0:
        raise RuntimeError(
            f"`dataproxy calibrate` failed (exit {done.returncode}): "
            + "\n".join(done.stderr.strip().splitlines()[-15:])
        )
    last = json.loads(done.stdout.strip().splitlines()[-1])
    path = last["out"]
    with open(path) as f:
        cal = json.load(f)
    name = cal["recommended"] or cal["best"]
    choice = next(c for c in cal["choices"] if c["name"] == name)
    return Calibration(
        method=choice["method"],
        ratio=float(choice["ratio"]),
        length=float(choice["length"]),
        epochs=int(choice["epochs"]),
        manifest=choice["seeds"][0]["manifest"],
        recommended=cal["recommended"] is not None,
        path=path,
        summary=done.stderr[done.stderr.find("calibration candidates") :].strip(),
    )


def bottom_line(report_json: str | os.PathLike) -> list[str]:
    """The report's three sentences for the end of a search: time against the full data,
    agreement with its interval, and the candidate to pick (empty when there is no report)."""
    try:
        with open(report_json) as f:
            return list(json.load(f).get("summary", {}).get("lines", []))
    except (OSError, ValueError):
        return []
