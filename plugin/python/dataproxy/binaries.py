"""Locating the project's C++ programs (`dataproxy`, `dataproxy-trial`) from Python.

Order: an explicit path, then an environment variable (DATAPROXY_BIN, DATAPROXY_TRIAL_BIN),
then PATH, then the build folders of a source checkout (DATAPROXY_BUILD_DIR, then ./build).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .errors import InvalidInput

__all__ = ["BinaryNotFound", "find_binary"]

#: program name -> (environment variable, path inside a build folder)
_PROGRAMS = {
    "dataproxy": ("DATAPROXY_BIN", "plugin/cli/dataproxy"),
    "dataproxy-trial": ("DATAPROXY_TRIAL_BIN", "trial_runner/dataproxy-trial"),
}


class BinaryNotFound(InvalidInput, FileNotFoundError):
    """A program of the project could not be found; the message says where it looked."""


def _checkout_root() -> Path:
    # plugin/python/dataproxy/binaries.py -> the repository root.
    return Path(__file__).resolve().parents[3]


def find_binary(name: str, explicit: str | os.PathLike | None = None) -> str:
    """Absolute path of program `name` ("dataproxy" or "dataproxy-trial")."""
    env_var, build_rel = _PROGRAMS[name]
    tried: list[str] = []
    if explicit:
        path = Path(explicit)
        if path.is_file() and os.access(path, os.X_OK):
            return str(path.resolve())
        raise BinaryNotFound(f"{name}: {str(path)!r} is not an executable file")
    from_env = os.environ.get(env_var)
    if from_env:
        path = Path(from_env)
        if path.is_file() and os.access(path, os.X_OK):
            return str(path.resolve())
        raise BinaryNotFound(f"{name}: {env_var}={from_env!r} is not an executable file")
    found = shutil.which(name)
    if found:
        return found
    tried.append("PATH")
    build_dirs = []
    if os.environ.get("DATAPROXY_BUILD_DIR"):
        build_dirs.append(Path(os.environ["DATAPROXY_BUILD_DIR"]))
    build_dirs.append(_checkout_root() / "build")
    for build in build_dirs:
        path = build / build_rel
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
        tried.append(str(path))
    raise BinaryNotFound(
        f"cannot find the program {name!r} (looked in {', '.join(tried)}); build it with "
        f"'cmake --build build --target {name}' (scripts/setup.sh does), or set {env_var} "
        "to its path"
    )
