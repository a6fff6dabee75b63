"""Shared constants and helpers of the Optuna integration tests."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SPACE = REPO / "search_spaces" / "resnet_tiny.yaml"
#: Tiny real slice: trials take seconds on one CPU thread.
SLICE = {"max_train": 600, "max_test": 300, "ratio": 0.2, "probe_epochs": 1}

sys.path.insert(0, str(REPO / "tests" / "python"))
from testdata import fashion_mnist_root  # noqa: E402, F401  (the fixtures' data root)


def cli_argv(data_root: Path, proxy_cache: Path, experiment: Path, *extra: str) -> list[str]:
    """`python -m dataproxy.optuna` on the tiny slice (same proxy inputs as `manifest`)."""
    return [
        sys.executable,
        "-m",
        "dataproxy.optuna",
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
        "--experiment",
        str(experiment),
        "--study-name",
        "it",
        "--threads",
        "1",
        "--device",
        "cpu",
        *extra,
    ]
