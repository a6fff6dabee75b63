"""Where the tests find their data: one variable, $DATAPROXY_DATA_ROOT (the data root
scripts/setup.sh filled), default <repo>/data. No other path is searched, so that a test never
passes on data the set-up did not provide."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def data_root() -> Path:
    """The data root: $DATAPROXY_DATA_ROOT, default <repo>/data."""
    return Path(os.environ.get("DATAPROXY_DATA_ROOT") or REPO / "data")


def fashion_mnist_root() -> Path | None:
    """A --data-root under which `dataproxy` finds Fashion-MNIST, or None."""
    root = data_root()
    for folder in (root / "fashion-mnist", root):
        if any(folder.glob("train-images-idx3-ubyte*")):
            return root
    return None
