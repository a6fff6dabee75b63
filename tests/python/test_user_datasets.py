"""Datasets a user already has, end to end through the built programs: an ImageFolder tree of
PNG files written here (mixed sizes, one grayscale image), a NumPy .npz and an IDX folder, read
by `dataproxy data-info`, `dataproxy generate` and `dataproxy-trial`.

Needs the built programs (DATAPROXY_BUILD_DIR, default <repo>/build).
"""

from __future__ import annotations

import gzip
import json
import os
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
SPACE = ROOT / "search_spaces" / "resnet_tiny.yaml"
BUILD = Path(os.environ.get("DATAPROXY_BUILD_DIR", ROOT / "build"))
DATAPROXY = Path(os.environ.get("DATAPROXY_BIN", BUILD / "plugin" / "cli" / "dataproxy"))
TRIAL = Path(os.environ.get("DATAPROXY_TRIAL_BIN", BUILD / "trial_runner" / "dataproxy-trial"))
CLASSES = ["circle", "square", "stripes"]

pytestmark = pytest.mark.skipif(not DATAPROXY.is_file(), reason=f"build {DATAPROXY} first")


def write_png(path: Path, pixels: np.ndarray) -> None:
    """An 8-bit PNG (grayscale for H x W, RGB for H x W x 3) from zlib and struct alone."""
    height, width = pixels.shape[:2]
    colour = 2 if pixels.ndim == 3 else 0
    rows = pixels.reshape(height, -1).astype(np.uint8)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def shape_image(cls: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """A noisy RGB picture whose class is visible: a disc, a square, or stripes."""
    y, x = np.mgrid[0:size, 0:size] / size
    masks = [
        (x - 0.5) ** 2 + (y - 0.5) ** 2 < 0.1,
        (abs(x - 0.5) < 0.3) & (abs(y - 0.5) < 0.3),
        (np.floor(x * 6) % 2) == 0,
    ]
    img = rng.integers(0, 60, (size, size, 3))
    img[masks[cls]] += 180
    return np.clip(img, 0, 255).astype(np.uint8)


def write_folder(root: Path, per_class: tuple[int, int] = (10, 6)) -> None:
    rng = np.random.default_rng(7)
    for split, count in zip(("train", "test"), per_class):
        for c, name in enumerate(CLASSES):
            for i in range(count):
                size = 16 if i == 0 and split == "train" else 12
                write_png(root / split / name / f"{i:03d}.png", shape_image(c, size, rng))
    # One grayscale image: the folder becomes RGB, the gray image is converted.
    gray = shape_image(1, 12, rng)[:, :, 0]
    write_png(root / "train" / "square" / "gray.png", gray)


def run(args: list, env_cache: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATAPROXY_CACHE": str(env_cache)}
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=timeout, env=env
    )


def data_info(fmt: str, root: Path, cache: Path, *extra: str) -> dict:
    done = run([DATAPROXY, "data-info", fmt, "--data-root", root, "--json", *extra], cache)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_folder_data_info_and_its_cache(tmp_path):
    write_folder(tmp_path / "shapes")
    cache = tmp_path / "cache"
    first = data_info("folder", tmp_path / "shapes", cache)
    assert first["train"]["class_names"] == CLASSES
    assert first["train"]["shape"] == [31, 3, 12, 12]
    assert first["test"]["shape"] == [18, 3, 12, 12]
    assert first["train"]["class_counts"] == [10, 11, 10]
    load = first["load"]
    assert load["format"] == "folder"
    assert "the most common size, 12x12" in load["image_size_rule"]
    assert load["resized"] == 3 and load["converted_to_rgb"] == 1
    assert load["cache_hit"] is False and load["cache_entry"].startswith(str(cache / "data"))

    # The second load reads the entry (and the hidden --root alias still works).
    done = run([DATAPROXY, "data-info", "folder", "--root", tmp_path / "shapes", "--json"], cache)
    assert done.returncode == 0, done.stderr
    second = json.loads(done.stdout)
    assert second["load"]["cache_hit"] is True
    assert second["load"]["cache_entry"] == load["cache_entry"]
    assert second["train"]["fingerprint"] == first["train"]["fingerprint"]

    text = run([DATAPROXY, "data-info", "folder", "--data-root", tmp_path / "shapes"], cache)
    assert text.returncode == 0, text.stderr
    assert "format folder" in text.stdout and "3 images resized" in text.stdout
    assert "(read, not decoded)" in text.stdout and "0 circle=10" in text.stdout

    resized = data_info("folder", tmp_path / "shapes", cache, "--image-size", "8")
    assert resized["train"]["shape"] == [31, 3, 8, 8]
    assert resized["load"]["image_size_rule"] == "--image-size 8"


def test_folder_errors_say_which_folder(tmp_path):
    write_folder(tmp_path / "shapes", per_class=(2, 1))
    for png in (tmp_path / "shapes" / "test" / "stripes").iterdir():
        png.unlink()
    done = run(
        [DATAPROXY, "data-info", "folder", "--data-root", tmp_path / "shapes"], tmp_path / "c"
    )
    assert done.returncode == 3
    assert str(tmp_path / "shapes" / "test" / "stripes") + ": an empty class" in done.stderr


def test_generate_and_trial_on_a_folder_dataset(tmp_path):
    if not TRIAL.is_file():
        pytest.skip(f"build {TRIAL} first")
    data = tmp_path / "shapes"
    write_folder(data)
    cache = tmp_path / "cache"
    done = run(
        [
            DATAPROXY,
            "generate",
            "--space",
            SPACE,
            "--dataset",
            "folder",
            "--data-root",
            data,
            "--image-size",
            "8",
            "--ratio",
            "0.5",
            "--probe-epochs",
            "1",
            "--threads",
            "1",
            "--report",
            "quiet",
        ],
        cache,
    )
    assert done.returncode == 0, done.stderr
    event = json.loads(done.stdout.strip().splitlines()[-1])
    manifest = json.loads(Path(event["path"]).read_text())
    assert manifest["dataset"] == "folder"
    assert manifest["load_options"]["image_size"] == 8
    assert manifest["train_size"] == 31 and event["size"] == 16

    trial = run(
        [
            TRIAL,
            "--manifest",
            event["path"],
            "--space",
            SPACE,
            "--data-root",
            data,
            "--params",
            json.dumps({"B": 4, "K": 3, "M": 1}),
            "--epochs",
            "1",
            "--threads",
            "1",
            "--report",
            "jsonl",
        ],
        cache,
    )
    assert trial.returncode == 0, trial.stderr
    final = json.loads(trial.stdout.strip().splitlines()[-1])
    assert final["event"] == "final" and final["status"] == "complete"
    assert 0.0 <= final["proxy_accuracy"] <= 1.0
    # generate decoded the folder once; the trial found the same cache entry.
    assert len([p for p in (cache / "data").iterdir() if p.is_dir()]) == 1


def test_npz_from_numpy(tmp_path):
    rng = np.random.default_rng(3)
    arrays = {
        "x_train": rng.integers(0, 256, (20, 10, 10, 3), dtype=np.uint8),
        "y_train": rng.integers(0, 5, (20, 1)).astype(np.int32),
        "x_test": rng.integers(0, 256, (8, 10, 10, 3), dtype=np.uint8),
        "y_test": np.arange(8, dtype=np.uint8) % 5,
    }
    np.savez_compressed(tmp_path / "compressed.npz", **arrays)
    np.savez(tmp_path / "stored.npz", **arrays)
    a = data_info("npz", tmp_path / "compressed.npz", tmp_path / "cache")
    b = data_info("npz", tmp_path / "stored.npz", tmp_path / "cache")
    assert a["train"]["shape"] == [20, 3, 10, 10]
    assert a["train"]["num_classes"] == 5
    assert a["train"]["fingerprint"] == b["train"]["fingerprint"]
    assert "num_classes = 5: the largest label (4) + 1" in a["load"]["notes"]

    del arrays["y_test"]
    np.savez(tmp_path / "bad.npz", **arrays)
    done = run(
        [DATAPROXY, "data-info", "npz", "--data-root", tmp_path / "bad.npz"], tmp_path / "cache"
    )
    assert done.returncode == 3
    assert "bad.npz: no array 'y_test'" in done.stderr


def test_idx_folder(tmp_path):
    rng = np.random.default_rng(5)

    def idx(path: Path, array: np.ndarray) -> None:
        magic = 0x800 + array.ndim
        head = struct.pack(">I", magic) + b"".join(struct.pack(">I", s) for s in array.shape)
        path.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(path, "wb") as f:
            f.write(head + array.astype(np.uint8).tobytes())

    idx(tmp_path / "k" / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (9, 28, 28)))
    idx(tmp_path / "k" / "train-labels-idx1-ubyte.gz", np.arange(9) % 4)
    idx(tmp_path / "k" / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (3, 28, 28)))
    idx(tmp_path / "k" / "t10k-labels-idx1-ubyte.gz", np.array([0, 1, 2]))
    info = data_info("idx", tmp_path / "k", tmp_path / "cache")
    assert info["train"]["shape"] == [9, 1, 28, 28]
    assert info["train"]["num_classes"] == 4
    assert info["test"]["class_counts"] == [1, 1, 1, 0]
