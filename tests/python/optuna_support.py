"""Shared bits of the Optuna adapter's unit tests: fake programs, a tiny space, pid checks."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

FAKES = Path(__file__).resolve().parent / "fakes"
FAKE_TRIAL = str(FAKES / "fake_trial.py")
FAKE_DATAPROXY = str(FAKES / "fake_dataproxy.py")

TINY_SPACE = """\
name: tiny
family: resnet
parameters:
  - name: B
    choices: [2, 4, 8]
  - name: K
    choices: [3, 5]
training:
  epochs: 3
"""


def write_space(folder: Path, text: str = TINY_SPACE) -> Path:
    path = folder / "space.yaml"
    path.write_text(text)
    return path


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie counts as gone: it no longer executes)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return not alive(pid)


def wait_for_file_lines(path: Path, n: int, timeout: float = 30.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            lines = [x for x in path.read_text().splitlines() if x.strip()]
            if len(lines) >= n:
                return lines
        time.sleep(0.05)
    raise AssertionError(f"{path} did not get {n} lines within {timeout} s")


def python_env() -> dict[str, str]:
    """Environment for child Python processes that import the package from this checkout."""
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2] / "plugin" / "python")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    # fake_trial.py plays one process per trial; the real runner's --serve has its own tests
    # (test_trial_server.py).
    env["DATAPROXY_TRIAL_SERVE"] = "0"
    return env


PYTHON = sys.executable
