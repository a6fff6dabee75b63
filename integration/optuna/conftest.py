"""Fixtures of the Optuna integration tests: the real programs, a tiny real data proxy, and a
throwaway PostgreSQL server."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from dataproxy.binaries import BinaryNotFound, find_binary
from optuna_it_support import SLICE, SPACE, fashion_mnist_root
from optuna_postgres import Unavailable, start_postgres


@pytest.fixture(scope="session")
def programs() -> dict[str, str]:
    try:
        return {
            "dataproxy": find_binary("dataproxy"),
            "dataproxy-trial": find_binary("dataproxy-trial"),
        }
    except BinaryNotFound as e:
        pytest.skip(f"Optuna integration needs the built programs: {e}")


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = fashion_mnist_root()
    if root is None:
        pytest.skip(
            "Fashion-MNIST not found under $DATAPROXY_DATA_ROOT (default <repo>/data; run "
            "scripts/setup.sh)"
        )
    return root


@pytest.fixture(scope="session")
def proxy_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("proxy-cache")


@pytest.fixture(scope="session")
def manifest(programs, data_root, proxy_cache) -> dict:
    """One real proxy (generated once per session; every test reuses it from the cache)."""
    argv = [
        programs["dataproxy"],
        "generate",
        "--space",
        str(SPACE),
        "--dataset",
        "fashion-mnist",
        "--data-root",
        str(data_root),
        "--cache",
        str(proxy_cache),
        "--ratio",
        str(SLICE["ratio"]),
        "--max-train",
        str(SLICE["max_train"]),
        "--max-test",
        str(SLICE["max_test"]),
        "--probe-epochs",
        str(SLICE["probe_epochs"]),
        "--method",
        "importance",
        "--seed",
        "0",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--report",
        "quiet",
    ]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout.strip().splitlines()[-1])
    assert info["event"] == "manifest"
    return info


@pytest.fixture
def postgres():
    try:
        server = start_postgres()
    except Unavailable as e:
        pytest.skip(f"no PostgreSQL server for this test: {e}")
    try:
        yield server
    finally:
        server.stop()
