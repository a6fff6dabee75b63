"""The one module that runs the `dataproxy` program for the adapters and the benchmarks.

The C++ program is the authority on names (selection methods), on what a search space means
(`dataproxy space FILE --json`), on the proxy (`generate` and its manifest) and on calibration;
Python asks it rather than keeping a copy that could drift. Every command line is an argv list,
built here once, never a shell string.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .binaries import find_binary
from .errors import CommandFailed, InvalidInput, RuntimeFailure, SpaceError

__all__ = [
    "Calibration",
    "GenerateOptions",
    "MethodInfo",
    "ProxyInfo",
    "bottom_line",
    "calibrate_argv",
    "check_method",
    "generate_argv",
    "manifest_event",
    "method_names",
    "read_manifest",
    "run_calibration",
    "run_generate",
    "selection_methods",
    "space_document",
]


def _failed(argv: list[str], done: subprocess.CompletedProcess, lines: int = 15) -> CommandFailed:
    tail = "\n".join(done.stderr.strip().splitlines()[-lines:])
    return CommandFailed(
        f"`dataproxy {argv[1]}` failed (exit {done.returncode}): {tail or '(no message)'}",
        exit_code=done.returncode,
        stderr_tail=tail,
    )


def space_document(path: str | os.PathLike, binary: str | None = None) -> dict[str, Any]:
    """The whole space as `dataproxy space FILE --json` prints it (parsed and checked in C++,
    family checks included); raises SpaceError with the program's message."""
    argv = [find_binary("dataproxy", binary), "space", str(path), "--json"]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        message = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""
        message = message.removeprefix("dataproxy space: error: ")
        raise SpaceError(
            f"search space {str(path)!r}: {message or f'dataproxy space exited {done.returncode}'}"
        )
    try:
        return json.loads(done.stdout)
    except ValueError:
        raise RuntimeFailure(
            f"`{' '.join(argv)}` printed no JSON document (is {argv[0]} a dataproxy program "
            "of this checkout?); stdout starts: " + done.stdout[:200]
        ) from None


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
        raise _failed(argv, done)
    return tuple(
        MethodInfo(m["name"], bool(m["needs_probes"]), m["summary"])
        for m in json.loads(done.stdout)
    )


def method_names(binary: str | None = None) -> tuple[str, ...]:
    return tuple(m.name for m in selection_methods(binary))


def check_method(name: str, binary: str | None = None) -> None:
    """Raises InvalidInput (a ValueError) naming the known methods when `name` is unknown."""
    names = method_names(binary)
    if name not in names:
        hint = " ('ours' is now called 'importance')" if name == "ours" else ""
        known = ", ".join(names)
        raise InvalidInput(f"selection method {name!r} is unknown; use one of {known}{hint}")


@dataclass(frozen=True)
class GenerateOptions:
    """A `dataproxy generate` run; each field is one of its flags (0 or None: not passed, the
    program's default applies)."""

    #: Search-space YAML file.
    space: str
    #: Dataset name (`dataproxy data-info` lists the formats).
    dataset: str
    #: Folder (or file, for npz) holding the data.
    data_root: str
    #: Proxy size as a fraction of the training split.
    ratio: float
    #: Selection method, one of `dataproxy methods`.
    method: str = "importance"
    seed: int = 0
    #: "half-test" or "paper-test" (None: the program's default).
    selection_split: str | None = None
    #: Share of the test split that chooses the proxy (None: the program's default).
    selection_fraction: float | None = None
    #: First N train / test samples only (0 = all).
    max_train: int = 0
    max_test: int = 0
    #: Probe networks (0 = the program's default).
    probes: int = 0
    #: Probe training epochs (0 = the space's).
    probe_epochs: int = 0
    #: Resize every image to N x N (0 = the data's most common size); the manifest records it,
    #: so the trials load the same size.
    image_size: int = 0
    #: Proxy cache folder (None = the program's default).
    cache: str | None = None
    #: "auto", "cpu", "cuda" (None: the program's default).
    device: str | None = None
    #: CPU threads (0 = the program's default).
    threads: int = 0
    #: Progress on stderr: "jsonl", "bar" or "quiet"; the manifest event is on stdout always.
    report: str = "jsonl"
    #: More flags, as given (e.g. ("--draw", "global") or ("--weights", "2,1,6,1")).
    extra: tuple[str, ...] = ()


def generate_argv(binary: str, options: GenerateOptions) -> list[str]:
    """The `dataproxy generate` command line (an argv list, never a shell string)."""
    o = options
    argv = [binary, "generate", "--space", str(o.space), "--dataset", o.dataset]
    argv += ["--data-root", str(o.data_root), "--ratio", repr(float(o.ratio))]
    argv += ["--method", o.method, "--seed", str(o.seed), "--report", o.report]
    for flag, value in (
        ("--selection-split", o.selection_split),
        ("--selection-fraction", o.selection_fraction),
        ("--max-train", o.max_train),
        ("--max-test", o.max_test),
        ("--probes", o.probes),
        ("--probe-epochs", o.probe_epochs),
        ("--image-size", o.image_size),
        ("--cache", o.cache),
        ("--device", o.device),
        ("--threads", o.threads),
    ):
        if value:
            argv += [flag, str(value)]
    return argv + [str(a) for a in o.extra]


@dataclass(frozen=True)
class ProxyInfo:
    """A proxy manifest: where it is, its cache key, and whether generate found it cached."""

    path: str
    key: str
    cache_hit: bool


def manifest_event(events: Iterable[Mapping[str, Any]]) -> ProxyInfo | None:
    """The proxy `dataproxy generate` announced (its last `manifest` event), or None."""
    found = None
    for event in events:
        if isinstance(event, Mapping) and event.get("event") == "manifest" and event.get("path"):
            found = event
    if found is None:
        return None
    return ProxyInfo(str(found["path"]), str(found.get("key", "")), bool(found.get("cache_hit")))


def _json_lines(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def run_generate(argv: list[str]) -> ProxyInfo:
    """Runs a `generate_argv` command line to its end; CommandFailed (with the program's exit
    code: 2 bad input, 3 data error) when it fails or announces no manifest."""
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise _failed(argv, done, lines=20)
    info = manifest_event(_json_lines(done.stdout))
    if info is None:
        raise CommandFailed(
            "`dataproxy generate` printed no manifest event; stdout ends: " + done.stdout[-500:],
            exit_code=1,
        )
    return info


def read_manifest(path: str | os.PathLike) -> ProxyInfo:
    """A manifest given by its file or its folder; InvalidInput when it cannot be read."""
    p = Path(path)
    if p.is_dir():
        p = p / "manifest.json"
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput(
            f"manifest {str(path)!r} does not exist; give the manifest.json that "
            "`dataproxy generate` announced, or its folder"
        ) from None
    except (OSError, ValueError) as e:
        raise InvalidInput(f"manifest {str(path)!r} cannot be read as JSON: {e}") from None
    if not isinstance(doc, dict) or not doc.get("key"):
        raise InvalidInput(f"manifest {str(p)!r} has no `key`: it is not a dataproxy manifest")
    return ProxyInfo(path=str(p), key=str(doc["key"]), cache_hit=True)


@dataclass(frozen=True)
class Calibration:
    """What `dataproxy calibrate` chose, and where its evidence is."""

    method: str
    ratio: float
    length: float  # proxy epochs as a multiple of the full-data epochs
    epochs: int  # proxy training epochs
    steps: int  # proxy optimizer steps when the length is not whole epochs; 0 = by epochs
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
    image_size: int = 0,
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
        ("--image-size", image_size),
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
        raise _failed(argv, done)
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
        steps=int(choice.get("steps") or 0),
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
