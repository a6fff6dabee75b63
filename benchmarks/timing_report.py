"""Where and when a timing benchmark ran, and how its result is written: the shared head of
every timing report (commit, date, machine, the others' CPU share) and one atomic writer for
its JSON and markdown, so that a killed run leaves the previous result whole."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path

from other_load import OtherLoad

ROOT = Path(__file__).resolve().parents[1]


def git_commit() -> str:
    """The short commit, with "-dirty" when tracked files differ from it; "unknown" outside git."""
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model, "cores": len(os.sched_getaffinity(0)), "host": platform.node()}


def header(benchmark: str, load: OtherLoad) -> dict:
    """The fields every timing report starts with; `load` must be stopped."""
    return {
        "benchmark": benchmark,
        "commit": git_commit(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        **load.result(),
        "load_sentence": load.sentence(),
    }


def stem(benchmark: str, commit: str, tag: str = "") -> str:
    day = time.strftime("%Y-%m-%d", time.gmtime())
    return f"{benchmark}_{day}_{commit}" + (f"_{tag}" if tag else "")


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write(out: Path, name: str, report: dict, markdown: str) -> None:
    """Writes out/<name>.json and out/<name>.md, each atomically, and prints the markdown."""
    out.mkdir(parents=True, exist_ok=True)
    _write_atomic(out / f"{name}.json", json.dumps(report, indent=2) + "\n")
    _write_atomic(out / f"{name}.md", markdown)
    print(markdown)
