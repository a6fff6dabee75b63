"""CIFAR-10 in parts, for machines that take uploads of limited size (the GPU tier): pack-data
splits the six binary files into parts; unpack-data joins them and checks every file's md5."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

# md5 of the extracted CIFAR-10 files (shared/notes/datasets.md); unpack-data checks them.
CIFAR10_MD5 = {
    "data_batch_1.bin": "5dd7e06a14cb22eb9f671a540d1b7c25",
    "data_batch_2.bin": "5ea93a67294ea407fff1d09f752e9692",
    "data_batch_3.bin": "942cd6a4bcdd0dd3c604fbe906cb4421",
    "data_batch_4.bin": "ae636b3ba5c66a11e91e8cb52e771fcb",
    "data_batch_5.bin": "53f37980c15c3d472c316c40844f3f0d",
    "test_batch.bin": "803d5f7f4d78ea53de84dbe85f74fb6d",
}


def pack_data(root: Path, out: Path, part_mib: int) -> None:
    src = root / "cifar-10-batches-bin"
    if not src.is_dir():
        src = root
    blob = b"".join((src / name).read_bytes() for name in CIFAR10_MD5)
    out.mkdir(parents=True, exist_ok=True)
    size = part_mib * 1024 * 1024
    parts = []
    for k in range(0, len(blob), size):
        p = out / f"part-{k // size + 1:02d}"
        p.mkdir(exist_ok=True)
        (p / "cifar10.part").write_bytes(blob[k : k + size])
        parts.append(p.name)
    (out / "index.json").write_text(
        json.dumps(
            {
                "files": list(CIFAR10_MD5),
                "sizes": [(src / n).stat().st_size for n in CIFAR10_MD5],
                "md5": CIFAR10_MD5,
                "parts": parts,
            },
            indent=1,
        )
        + "\n"
    )
    print(f"{len(parts)} parts of at most {part_mib} MiB in {out}")


def unpack_data(parts: Path, root: Path) -> None:
    index = json.loads((parts / "index.json").read_text())
    blob = b"".join((parts / p / "cifar10.part").read_bytes() for p in index["parts"])
    dest = root / "cifar-10-batches-bin"
    dest.mkdir(parents=True, exist_ok=True)
    at = 0
    for name, size in zip(index["files"], index["sizes"]):
        data = blob[at : at + size]
        at += size
        digest = hashlib.md5(data).hexdigest()
        if digest != CIFAR10_MD5[name]:
            sys.exit(
                f"unpack-data: {name} has md5 {digest}, expected {CIFAR10_MD5[name]}; "
                "a part is missing or damaged: upload the parts again"
            )
        (dest / name).write_bytes(data)
    print(f"CIFAR-10 verified and written to {dest}")
