"""Where the tests find real Fashion-MNIST: $DATAPROXY_DATA_ROOT, <repo>/data (what
scripts/setup.sh fetches) or Debian's dataset-fashion-mnist package."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def fashion_mnist_root() -> Path | None:
    """A --data-root under which `dataproxy` finds Fashion-MNIST, or None."""
    candidates = []
    if os.environ.get("DATAPROXY_DATA_ROOT"):
        candidates.append(Path(os.environ["DATAPROXY_DATA_ROOT"]))
    candidates += [REPO / "data", Path("/usr/share/datasets/fashion-mnist")]
    for root in candidates:
        for folder in (root / "fashion-mnist", root):
            if any(folder.glob("train-images-idx3-ubyte*")):
                return root
    return None
