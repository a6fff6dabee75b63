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


def write_signed_manifest(folder: Path, **fields: object) -> dict:
    """Writes a complete proxy manifest into `folder` (manifest.json and its side files) that
    `load_manifest` accepts: `fields` override a small default, then the key and checksum are
    computed as plugin/src/manifest/manifest.cpp does (SHA-256 of nlohmann's compact dump, which
    sorts keys). A signing rule that drifted from the C++ one makes the report refuse it, so a
    test using this fails rather than passes on a wrong manifest. Returns the manifest."""
    import hashlib
    import json
    import struct

    def dump(obj: object) -> bytes:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    def side(name: str, indices: list[int]) -> str:
        data = b"".join(struct.pack("<q", i) for i in indices)
        (folder / name).write_bytes(data)
        return hashlib.sha256(data).hexdigest()

    folder.mkdir(parents=True, exist_ok=True)
    m: dict = {
        "schema_version": 2, "tool_version": "test", "created": "2026-11-30T10:00:00Z",
        "dataset": "cifar10", "train_fingerprint": "train-fp", "test_fingerprint": "test-fp",
        "train_size": 20, "test_size": 10, "num_classes": 2,
        "load_options": {"max_train": 0, "max_test": 0, "official_sizes": True},
        "space_name": "test", "space_hash": "space-hash", "method": "importance",
        "settings": {}, "ratio": 0.1, "seed": 0, "kept_classes": [0, 1], "label_remap": [0, 1],
        "probes": [], "case_counts": {}, "class_counts": [1, 1], "stage_seconds": {},
        "summary": {},
        "selection": {"split": "half-test", "fraction": 0.5, "seed": 0},
    }  # fmt: skip
    m.update(fields)
    indices, selection, evaluation = [3, 11], [0, 2, 4, 6, 8], [1, 3, 5, 7, 9]
    m.update(size=len(indices), indices_file="indices.bin",
             indices_sha256=side("indices.bin", indices))  # fmt: skip
    m["selection"].update(
        selection_size=len(selection), selection_file="selection.bin",
        selection_sha256=side("selection.bin", selection), evaluation_size=len(evaluation),
        evaluation_file="evaluation.bin", evaluation_sha256=side("evaluation.bin", evaluation),
    )  # fmt: skip
    deciding = {
        "kind": "dataproxy.proxy",
        **{k: m[k] for k in ("dataset", "train_fingerprint", "test_fingerprint", "train_size",
                             "test_size", "load_options", "space_hash", "method", "settings",
                             "ratio", "seed", "tool_version")},
        "selection": {k: m["selection"][k] for k in ("split", "fraction", "seed")},
    }  # fmt: skip
    m["key"] = hashlib.sha256(dump(deciding)).hexdigest()
    m.pop("checksum", None)
    m["checksum"] = hashlib.sha256(dump(m)).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(m, indent=2))
    return m
