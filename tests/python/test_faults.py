"""Faults, with the real programs on small real data: a process killed with SIGKILL in the middle
of its work, a cache, results store or report folder that is read-only or on a full disk, and a
CIFAR-10 download cut off halfway. Each time: a clear error, nothing written earlier is lost, and
a rerun succeeds.

Full disks and read-only folders are real file systems: a small tmpfs mounted by the test (as
root, which CI is; elsewhere these tests are skipped, and DATAPROXY_NO_SKIP=1 makes that fail).

Needs the built programs (DATAPROXY_BUILD_DIR, default <repo>/build) and Fashion-MNIST under
DATAPROXY_DATA_ROOT (default <repo>/data).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from testdata import fashion_mnist_root

ROOT = Path(__file__).resolve().parents[2]
SPACE = ROOT / "search_spaces" / "resnet_tiny.yaml"
BUILD = Path(os.environ.get("DATAPROXY_BUILD_DIR", ROOT / "build"))
TRIAL = Path(os.environ.get("DATAPROXY_TRIAL_BIN", BUILD / "trial_runner" / "dataproxy-trial"))
DATAPROXY = Path(os.environ.get("DATAPROXY_BIN", BUILD / "plugin" / "cli" / "dataproxy"))
GOOD = {"B": 4, "K": 3, "M": 1}
FMNIST_FILES = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
]


@pytest.fixture(scope="module")
def data() -> Path:
    for program in (DATAPROXY, TRIAL):
        if not program.is_file():
            pytest.skip(f"build {program} first (set DATAPROXY_BUILD_DIR)")
    root = fashion_mnist_root()
    if root is None:
        pytest.skip("Fashion-MNIST not found (set DATAPROXY_DATA_ROOT)")
    return root


def generate_argv(
    data: Path, cache: Path, ratio: float = 0.25, seed: int = 0, max_train: int = 600
) -> list[str]:
    return [
        str(DATAPROXY),
        "generate",
        "--space",
        str(SPACE),
        "--dataset",
        "fashion-mnist",
        "--data-root",
        str(data),
        "--cache",
        str(cache),
        "--ratio",
        str(ratio),
        "--max-train",
        str(max_train),
        "--max-test",
        "300",
        "--probe-epochs",
        "1",
        "--threads",
        "1",
        "--seed",
        str(seed),
        "--report",
        "jsonl",
    ]


def last_event(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def generate(data: Path, cache: Path, **kw) -> dict:
    done = subprocess.run(generate_argv(data, cache, **kw), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    event = last_event(done.stdout)
    assert event["event"] == "manifest", event
    return event


def trial_argv(data: Path, manifest: str | Path, results: Path, epochs: int = 1) -> list[str]:
    return [
        str(TRIAL),
        "--space",
        str(SPACE),
        "--data-root",
        str(data),
        "--manifest",
        str(manifest),
        "--results",
        str(results),
        "--params",
        json.dumps(GOOD),
        "--epochs",
        str(epochs),
        "--threads",
        "1",
        "--report",
        "jsonl",
    ]


def snapshot(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder` (lock files, empty by design, included)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def store_lines(results: Path) -> list[dict]:
    """Every line of the results store; each must be one whole JSON record."""
    text = (results / "results.jsonl").read_text()
    assert text == "" or text.endswith("\n"), f"torn last line: {text[-200:]!r}"
    return [json.loads(line) for line in text.splitlines()]


def memos(cache: Path) -> dict[str, dict]:
    """The data fingerprint memos (data/<source key>/fingerprints.json): one entry per slice, so
    a run on another slice of the same files adds to them."""
    return {
        str(p.relative_to(cache)): json.loads(p.read_text())
        for p in cache.glob("data/*/fingerprints.json")
    }


def assert_earlier_kept(cache: Path, before: dict[str, str], memo: dict[str, dict]) -> None:
    """Every earlier file is unchanged, but for the memos, which are whole JSON and keep every
    earlier entry."""
    after = snapshot(cache)
    kept = {k: after.get(k) for k in before if k not in memo}
    assert kept == {k: v for k, v in before.items() if k not in memo}, "an earlier file changed"
    now = memos(cache)
    for name, entries in memo.items():
        assert now[name].items() >= entries.items(), (name, entries, now[name])


def store_lines_skipping_torn_tail(results: Path) -> list[dict]:
    text = (results / "results.jsonl").read_text(errors="replace")
    return [json.loads(line) for line in text[: text.rfind("\n") + 1].splitlines()]


def check_manifest(event: dict) -> None:
    """The manifest and its side files are whole: the checksums it records match."""
    folder = Path(event["path"]).parent
    manifest = json.loads(Path(event["path"]).read_text())
    assert manifest["key"] == event["key"]
    digest = hashlib.sha256((folder / manifest["indices_file"]).read_bytes()).hexdigest()
    assert digest == manifest["indices_sha256"]


@pytest.fixture(scope="module")
def proxy(data, tmp_path_factory) -> tuple[Path, dict]:
    """A cache holding one real proxy (and its probes), copied by the tests that need one."""
    cache = tmp_path_factory.mktemp("cache")
    return cache, generate(data, cache)


@pytest.fixture(scope="module")
def one_record(data, proxy, tmp_path_factory) -> Path:
    """A results store with one complete record."""
    results = tmp_path_factory.mktemp("results")
    done = subprocess.run(trial_argv(data, proxy[1]["path"], results), capture_output=True)
    assert done.returncode == 0, done.stderr
    assert [r["status"] for r in store_lines(results)] == ["complete"]
    return results


# ---- SIGKILL in the middle ---------------------------------------------------------------------


def start(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def kill_after_line(proc: subprocess.Popen, wanted: str, timeout: float = 300) -> list[str]:
    """Reads stdout until a line containing `wanted`, then SIGKILLs the process."""
    seen: list[str] = []
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line)
            if wanted in line:
                break
    finally:
        timer.cancel()
    proc.kill()
    proc.wait()
    assert any(wanted in line for line in seen), f"never saw {wanted!r}: {seen[-5:]}"
    return seen


@pytest.mark.parametrize(
    "moment",
    ['"event":"probe_start"', '"event":"probe_done"', '"what":"features"'],
    ids=["training-probes", "after-first-probe", "mapping"],
)
def test_generate_killed_then_rerun(data, proxy, tmp_path, moment):
    cache = tmp_path / "cache"
    shutil.copytree(proxy[0], cache)
    before = snapshot(cache)
    memo = memos(cache)
    # Another slice: new probes and a new proxy in the same cache as the earlier one.
    kill_after_line(start(generate_argv(data, cache, max_train=700)), moment)
    assert_earlier_kept(cache, before, memo)
    # No manifest of the killed run is visible (it would be a whole one, written atomically).
    for manifest in cache.rglob("manifest.json"):
        if str(manifest.relative_to(cache)) not in before:
            check_manifest({"path": str(manifest), "key": manifest.parent.name})
    event = generate(data, cache, max_train=700)
    assert event["cache_hit"] is False
    check_manifest(event)
    again = generate(data, cache, max_train=700)
    assert again["cache_hit"] is True and again["key"] == event["key"]
    # The earlier proxy is still found, unchanged.
    earlier = generate(data, cache)
    assert earlier["cache_hit"] is True and earlier["key"] == proxy[1]["key"]


@pytest.fixture(scope="module")
def fmnist_source(data, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """The four Fashion-MNIST .gz files as Debian ships them (made from the data root's files),
    and the md5 of each decompressed file."""
    folder = data / "fashion-mnist" if (data / "fashion-mnist").is_dir() else data
    source = tmp_path_factory.mktemp("fmnist-source")
    md5 = {}
    for name in FMNIST_FILES:
        raw_path = folder / name
        raw = (
            raw_path.read_bytes()
            if raw_path.exists()
            else gzip.decompress((folder / f"{name}.gz").read_bytes())
        )
        md5[name] = hashlib.md5(raw).hexdigest()
        (source / f"{name}.gz").write_bytes(gzip.compress(raw, compresslevel=1))
    return source, md5


def fetch_argv(root: Path, source: Path) -> list[str]:
    return [
        str(DATAPROXY),
        "fetch-data",
        "fashion-mnist",
        "--root",  # the spelling every version takes (--data-root is newer)
        str(root),
        "--source",
        str(source),
    ]


@pytest.mark.parametrize("delay", [0.3, 1.0, 2.0])
def test_fetch_data_killed_then_rerun(fmnist_source, tmp_path, delay):
    source, md5 = fmnist_source
    root = tmp_path / "data"
    other = root / "cifar-10-batches-bin" / "data_batch_1.bin"
    other.parent.mkdir(parents=True)
    other.write_bytes(b"another dataset, not to be touched")
    proc = subprocess.Popen(
        fetch_argv(root, source), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    time.sleep(delay)
    proc.kill()
    proc.wait()
    placed = root / "fashion-mnist"
    if placed.exists():  # the kill came late: then the files are all there and verified
        assert {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in placed.iterdir()} == md5
    assert other.read_bytes() == b"another dataset, not to be touched"

    done = subprocess.run(fetch_argv(root, source), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in placed.iterdir()} == md5
    leftovers = [p.name for p in root.iterdir() if ".tmp-" in p.name]
    assert leftovers == [], "the rerun left the killed run's temporary folder"
    assert other.read_bytes() == b"another dataset, not to be touched"


def test_trial_killed_then_rerun(data, proxy, one_record, tmp_path):
    results = tmp_path / "results"
    shutil.copytree(one_record, results)
    before = (results / "results.jsonl").read_bytes()
    kill_after_line(start(trial_argv(data, proxy[1]["path"], results, epochs=50)), '"epoch"')
    assert (results / "results.jsonl").read_bytes() == before
    done = subprocess.run(trial_argv(data, proxy[1]["path"], results), capture_output=True)
    assert done.returncode == 0, done.stderr
    lines = store_lines(results)
    assert [r["status"] for r in lines] == ["complete", "complete"]
    assert (results / "results.jsonl").read_bytes().startswith(before)
    report = subprocess.run(
        [str(DATAPROXY), "report", "--results", str(results)], capture_output=True, text=True
    )
    assert report.returncode == 0, report.stderr
    assert json.loads((results / "report.json").read_text())["records"] == 2


# ---- read-only folders and full disks ------------------------------------------------------------


@contextlib.contextmanager
def small_fs(folder: Path, size_kib: int = 256):
    """A tmpfs of `size_kib` KiB mounted on `folder` (root only)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def fill(folder: Path) -> None:
    """Fills the file system of `folder` to the last byte."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        size = 1 << 16
        while size:
            try:
                os.write(fd, b"\0" * size)
            except OSError:
                size //= 2
    finally:
        os.close(fd)


def make_read_only(folder: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)


def restore(folder: Path, fault: str) -> None:
    if fault == "full":
        (folder / "filler").unlink()
    else:
        subprocess.run(["mount", "-o", "remount,rw", str(folder)], check=True)


FAULTS = {
    "full": ("No space left on device", fill),
    "read-only": ("Read-only file system", make_read_only),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_cache_on_a_full_or_read_only_disk(data, proxy, tmp_path, fault):
    message, apply = FAULTS[fault]
    with small_fs(tmp_path / "fs", size_kib=4096) as fs:
        cache = fs / "cache"
        shutil.copytree(proxy[0], cache)
        before = snapshot(cache)
        apply(fs)
        # Another ratio: the probes are a cache hit, the new proxy has to be written.
        done = subprocess.run(generate_argv(data, cache, ratio=0.3), capture_output=True, text=True)
        assert done.returncode == 1, (done.returncode, done.stderr)
        assert "dataproxy generate: error: " in done.stderr and message in done.stderr, done.stderr
        assert str(cache) in done.stderr, done.stderr
        # The error names the file the user knows, not a temporary one, and what to do.
        assert ".tmp" not in done.stderr, done.stderr
        assert "point --cache at" in done.stderr or "free space" in done.stderr, done.stderr
        after = snapshot(cache)
        assert {k: after[k] for k in before} == before
        # Nothing of the failed proxy is left but its (empty) lock file.
        new = {k for k in set(after) - set(before) if not k.endswith(".lock")}
        assert new == set(), new
        # Space again: the earlier proxy is still served from the cache and the failed one is
        # built (test_cache_hit_on_a_full_or_read_only_disk serves hits without space).
        restore(fs, fault)
        earlier = generate(data, cache)
        assert earlier["cache_hit"] is True and earlier["key"] == proxy[1]["key"]
        check_manifest(generate(data, cache, ratio=0.3))


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_cache_hit_on_a_full_or_read_only_disk(data, proxy, tmp_path, fault):
    """A proxy already in a cache that cannot be written is served, verified, and nothing is
    written; a changed one is still refused."""
    _, apply = FAULTS[fault]
    with small_fs(tmp_path / "fs", size_kib=4096) as fs:
        cache, tampered = fs / "cache", fs / "tampered"
        shutil.copytree(proxy[0], cache)
        for lock in cache.rglob("*.lock"):  # serving must not need to create one
            lock.unlink()
        shutil.copytree(cache, tampered)
        indices = Path(proxy[1]["path"].replace(str(proxy[0]), str(tampered))).parent
        data_bytes = (indices / "indices.bin").read_bytes()
        (indices / "indices.bin").write_bytes(bytes([data_bytes[0] ^ 1]) + data_bytes[1:])
        before = snapshot(cache)
        apply(fs)
        hit = generate(data, cache)
        assert hit["cache_hit"] is True and hit["key"] == proxy[1]["key"], hit
        assert Path(hit["path"]).is_relative_to(cache)
        # Nothing written (a full disk still takes an empty lock file).
        after = snapshot(cache)
        assert {k: v for k, v in after.items() if not k.endswith(".lock")} == before
        done = subprocess.run(generate_argv(data, tampered), capture_output=True, text=True)
        assert done.returncode == 3, (done.returncode, done.stderr)
        assert "indices" in done.stderr and "was changed" in done.stderr, done.stderr
        restore(fs, fault)


def pad_to_page_end(results: Path, room: int) -> None:
    """Appends a valid record so that the store ends `room` bytes before a 4 KiB page ends: the
    next record then fits only in part, as on a disk that fills up during the write."""
    store = results / "results.jsonl"
    record = store_lines(results)[0]
    record["trial_id"] = "padding"
    record["extra"] = {"pad": ""}
    base = len(json.dumps(record)) + 1
    size = store.stat().st_size
    pad = (-(size + base + room)) % 4096
    record["extra"]["pad"] = "x" * pad
    with store.open("a") as f:
        f.write(json.dumps(record) + "\n")
    assert (store.stat().st_size + room) % 4096 == 0


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_results_store_on_a_full_or_read_only_disk(data, proxy, one_record, tmp_path, fault):
    message, apply = FAULTS[fault]
    with small_fs(tmp_path / "fs") as fs:
        results = fs / "results"
        shutil.copytree(one_record, results)
        pad_to_page_end(results, room=100)
        before = (results / "results.jsonl").read_bytes()
        apply(fs)
        done = subprocess.run(
            trial_argv(data, proxy[1]["path"], results), capture_output=True, text=True
        )
        assert done.returncode == 1, (done.returncode, done.stderr)
        assert "dataproxy-trial: error: " in done.stderr and message in done.stderr, done.stderr
        assert str(results / "results.jsonl") in done.stderr, done.stderr
        # The earlier records are whole; at most a torn tail without its newline follows, which
        # readers skip and the next append cuts off.
        after = (results / "results.jsonl").read_bytes()
        assert after.startswith(before) and b"\n" not in after[len(before) :], after[-300:]
        assert len(store_lines_skipping_torn_tail(results)) == 2
        restore(fs, fault)
        # Space again: the rerun's record follows the earlier ones and the store reads whole.
        again = subprocess.run(trial_argv(data, proxy[1]["path"], results), capture_output=True)
        assert again.returncode == 0, again.stderr
        assert [r["trial_id"] for r in store_lines(results)][1] == "padding"
        assert len(store_lines(results)) == 3


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_report_to_a_full_or_read_only_disk(data, one_record, tmp_path, fault):
    message, apply = FAULTS[fault]
    with small_fs(tmp_path / "fs", size_kib=1024) as fs:
        out = fs / "report"
        first = subprocess.run(
            [str(DATAPROXY), "report", "--results", str(one_record), "--out", str(out)],
            capture_output=True,
            text=True,
        )
        assert first.returncode == 0, first.stderr
        before = snapshot(out)
        assert {"report.json", "report.html"} <= set(before)
        apply(fs)
        done = subprocess.run(
            [str(DATAPROXY), "report", "--results", str(one_record), "--out", str(out)],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 1, (done.returncode, done.stderr)
        assert "dataproxy report: error: " in done.stderr and message in done.stderr, done.stderr
        assert str(out) in done.stderr, done.stderr
        assert snapshot(out) == before


# ---- a download cut off halfway ------------------------------------------------------------------


class CutOffServer:
    """Announces a 4 MB tarball and closes the connection after half of it."""

    def __init__(self) -> None:
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                server.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/gzip")
                self.send_header("Content-Length", str(4_000_000))
                self.end_headers()
                self.wfile.write(b"\x1f\x8b" + b"\0" * 1_999_998)
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/cifar-10-binary.tar.gz"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_cifar10_download_cut_off_leaves_no_partial_file(data, tmp_path):
    server = CutOffServer()
    # Only tar on PATH: the npm fallback route is not found, so the cut-off is the outcome.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "tar").symlink_to(shutil.which("tar"))
    root = tmp_path / "data"
    root.mkdir()
    (root / "keep.txt").write_text("earlier content")
    env = {**os.environ, "PATH": str(bin_dir), "http_proxy": "", "https_proxy": ""}
    try:
        done = subprocess.run(
            [str(DATAPROXY), "fetch-data", "cifar10", "--root", str(root)] + ["--url", server.url],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
    finally:
        server.close()
    assert server.requests == 1
    assert done.returncode == 1, (done.returncode, done.stderr)
    assert "dataproxy fetch-data: error: " in done.stderr, done.stderr
    # The cut-off download is named with what went wrong.
    assert f"download of {server.url} failed: transfer closed" in done.stderr, done.stderr
    assert "npm" in done.stderr, done.stderr  # and why the other route was not taken
    left = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    assert [p for p in left if not p.endswith(".lock")] == ["keep.txt"], left
    assert (root / "keep.txt").read_text() == "earlier content"
