"""The `dataproxy` binary as the benchmark sees it: finding it, running it, asking it for its
proxy methods and a space's configurations, and decoding what it records."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from functools import cache
from pathlib import Path

import numpy as np
from util import REPO


def find_binary(explicit: str | None) -> Path:
    candidates = [explicit, os.environ.get("DATAPROXY_BIN")]
    candidates += [
        str(REPO / b / "plugin" / "cli" / "dataproxy") for b in ("build", "build-ranking")
    ]
    for c in candidates:
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return Path(c).resolve()
    sys.exit(
        "run.py: no dataproxy binary found; build it (cmake --build build --target dataproxy-cli) "
        "or pass --bin PATH / set DATAPROXY_BIN"
    )


_LIVE: set[subprocess.Popen] = set()
_LIVE_LOCK = threading.Lock()


STOPPING = threading.Event()


def kill_children() -> None:
    """Kills every child still running (the benchmark was interrupted): none outlives it, and
    none starts after it (work queued on other threads is refused)."""
    STOPPING.set()
    with _LIVE_LOCK:
        for proc in list(_LIVE):
            proc.kill()


def run_json_lines(argv: list[str]) -> tuple[list[dict], float]:
    """Runs a command (argv list, no shell); returns its JSON stdout lines and wall seconds."""
    start = time.monotonic()
    with _LIVE_LOCK:
        if STOPPING.is_set():
            raise RuntimeError("the benchmark is stopping: not started: " + " ".join(argv[:2]))
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _LIVE.add(proc)
    with proc:
        try:
            stdout, stderr = proc.communicate()
        except BaseException:
            proc.kill()  # interrupted: the child must not outlive the benchmark
            raise
        finally:
            with _LIVE_LOCK:
                _LIVE.discard(proc)
    wall = time.monotonic() - start
    if proc.returncode != 0:
        raise RuntimeError(
            f"command failed with exit code {proc.returncode}: {' '.join(argv)}\n"
            f"stderr: {stderr[-3000:]}\nstdout: {stdout[-1000:]}"
        )
    rows = []
    for line in stdout.splitlines():
        if line.startswith("{") or line.startswith("["):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return rows, wall


@cache
def version(binary: str) -> str:
    return subprocess.run([binary, "version"], capture_output=True, text=True).stdout.strip()


@cache
def binary_sha256(binary: str) -> str:
    return hashlib.sha256(Path(binary).read_bytes()).hexdigest()


@cache
def methods(binary: str) -> tuple[dict, ...]:
    """The proxy methods the binary implements (`dataproxy methods --json`), in its order."""
    out = subprocess.run([binary, "methods", "--json"], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"`{binary} methods --json` failed: {out.stderr.strip()}")
    doc = json.loads(out.stdout)
    return tuple(doc)


@cache
def config_ids(binary: str, space: str) -> tuple[str, ...]:
    """A space's configuration ids in its enumeration order, from the tool itself."""
    rows, _ = run_json_lines([binary, "evaluate", "--space", space, "--list-configs"])
    return tuple(r["config_id"] for r in rows if isinstance(r, dict) and r.get("event") == "config")


def record_extra(record: dict) -> dict:
    """A result record's training and data settings under the flat keys of schema
    "dataproxy.result/1" ("extra": data, train_size, test_size, epochs, train_seed, steps,
    samples_seen, correct_bits, ...), for records of either schema: records written by
    binaries from before the typed groups ("extra") and after ("training", "data", "correct")
    share stores (the reference cache, a benchmark still running an older binary)."""
    if "extra" in record or "training" not in record:
        return record.get("extra") or {}
    t = record.get("training") or {}
    d = record.get("data") or {}
    proxy = bool(record.get("manifest_key")) or record.get("proxy_accuracy") is not None
    out = {
        "data": "proxy" if proxy else "full",
        "train_seed": t.get("seed"),
        "curve": record.get("proxy_curve", []) if proxy else t.get("full_curve", []),
        "full_curve": t.get("full_curve", []),
    }
    for key in ("epochs", "proxy_epochs", "steps", "samples_seen", "threads", "memory_format"):
        out[key] = t.get(key)
    out["tool_version"] = t.get("tool_version")
    for key in ("dataset", "space", "space_hash", "method", "ratio", "sampling_seed"):
        out[key] = d.get(key)
    for key in ("max_train", "max_test", "train_size", "test_size", "num_classes", "manifest"):
        out[key] = d.get(key)
    correct = record.get("correct")
    if correct:
        out["correct_on"] = correct.get("on")
        out["correct_bits"] = correct.get("bits")
    return out


def decode_correct(record: dict) -> np.ndarray | None:
    """Per-test-sample correctness (bool array) of a record written with --record-correct:
    base64 of numpy.packbits(correct) (big bit order); the length is the record's test_size."""
    extra = record_extra(record)
    bits = extra.get("correct_bits")
    if bits is None:
        return None
    n = int(extra["test_size"])
    raw = np.frombuffer(base64.b64decode(bits), dtype=np.uint8)
    return np.unpackbits(raw, count=n).astype(bool)


def read_indices(path: Path) -> np.ndarray:
    """A manifest's side file of sorted int64 little-endian indices."""
    return np.fromfile(path, dtype="<i8")
