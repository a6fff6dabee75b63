"""`dataproxy report` end to end: a known results store, the real binary, the page in headless
Chromium (plots rendered, script ran, no console errors), a screenshot for people to look at,
and --watch refreshing while records arrive.

The binary is found in $DATAPROXY_BUILD_DIR (default <repo>/build)/plugin/cli/dataproxy.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from testdata import write_signed_manifest

REPO = Path(__file__).resolve().parents[2]
BUILD_DIR = Path(os.environ.get("DATAPROXY_BUILD_DIR", REPO / "build"))
BINARY = BUILD_DIR / "plugin" / "cli" / "dataproxy"
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
]

# (config_id, proxy accuracy, full accuracy or None, proxy seconds, full seconds, MACs)
SPOT_CHECKS = [
    ("B8_K3_M2", 0.712, 0.861, 30.0, 300.0, 10_000_000),
    ("B8_K5_M2", 0.731, 0.872, 34.0, 350.0, 16_000_000),
    ("B16_K3_M2", 0.755, 0.889, 52.0, 510.0, 40_000_000),
    ("B16_K5_M4", 0.781, 0.884, 90.0, 880.0, 160_000_000),
    ("B32_K3_M2", 0.792, 0.903, 120.0, 1250.0, 160_000_000),
    ("B32_K5_M4", 0.805, 0.915, 300.0, 2900.0, 640_000_000),
]
PROXY_ONLY = [
    ("B8_K3_M4", 0.725, None, 40.0, 0.0, 30_000_000),
    ("B16_K3_M4", 0.769, None, 70.0, 0.0, 120_000_000),
    ("B16_K5_M2", 0.761, None, 60.0, 0.0, 64_000_000),
    ("B32_K3_M4", 0.798, None, 200.0, 0.0, 480_000_000),
]
# Probes of the manifest: the lightest was also trained on the proxy (B8_K3_M4 above), so it
# becomes a ranking point; the heaviest was never searched.
PROBES = [
    {"config_id": "B8_K3_M4", "config": {"B": 8, "K": 3, "M": 4}, "macs": 30_000_000,
     "params": 80_000, "test_accuracy": 0.866, "train_seconds": 410.0, "epoch_seconds": 41.0,
     "epochs": 10},
    {"config_id": "B32_K5_M8", "config": {"B": 32, "K": 5, "M": 8}, "macs": 2_500_000_000,
     "params": 9_000_000, "test_accuracy": 0.921, "train_seconds": 9000.0,
     "epoch_seconds": 900.0, "epochs": 10},
]  # fmt: skip
RANKED = 7  # six spot checks and one probe


def record(i: int, row: tuple, status: str = "complete") -> dict:
    config_id, proxy, full, proxy_s, full_s, macs = row
    b, k, m = (int(part[1:]) for part in config_id.split("_"))
    return {
        "schema": "dataproxy.result/1",
        "trial_id": str(i),
        "parameter_id": i,
        "framework": "optuna",
        "config": {"B": b, "K": k, "M": m},
        "config_id": config_id,
        "status": status,
        "proxy_accuracy": proxy,
        "full_accuracy": full,
        "spot_check": full is not None,
        "proxy_curve": [proxy * 0.8, proxy],
        "proxy_seconds": proxy_s,
        "full_seconds": full_s,
        "macs": macs,
        "params": macs // 100,
        "device": "cpu",
        "manifest_key": "",  # write_store() names its manifest's
        "finished": "2026-11-27T20:26:25Z",
        "extra": {},
    }


def write_store(folder: Path, torn_tail: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    key = write_signed_manifest(
        folder, space_name="resnet20", probes=PROBES,
        stage_seconds={"probes": 9410.0, "features": 40.0, "pca": 5.0, "knn": 12.0},
    )["key"]  # fmt: skip
    rows = SPOT_CHECKS + PROXY_ONLY
    records = [record(i, row) for i, row in enumerate(rows)]
    records.append(record(len(rows), ("B32_K5_M2", 0.41, None, 15.0, 0.0, 320_000_000), "pruned"))
    for r in records:
        r["manifest_key"] = key
    text = "\n".join(json.dumps(r) for r in records) + "\n"
    if torn_tail:  # a trial runner killed mid-write
        text += json.dumps(record(99, SPOT_CHECKS[0]))[:57]
    (folder / "results.jsonl").write_text(text)
    return folder


def need_binary() -> None:
    if not BINARY.is_file():
        pytest.skip(f"dataproxy binary not built at {BINARY} (set DATAPROXY_BUILD_DIR)")


def run_report(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    need_binary()
    done = subprocess.run(
        [str(BINARY), "report", *args], capture_output=True, text=True, timeout=120
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return path


def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    store = write_store(tmp_path / "exp")
    out = tmp_path / "out"
    done = run_report(
        "--results", str(store), "--out", str(out), "--bootstrap", "500", "--title",
        "ResNet20 on CIFAR-10, 10% proxy",
    )  # fmt: skip
    assert "report.html" in done.stdout

    report = json.loads((out / "report.json").read_text())
    assert report["records"] == 11  # the torn tail is not a record
    ranking = report["ranking"]
    assert ranking["n"] == RANKED
    assert report["manifest"]["path"].endswith("manifest.json")  # found beside the store
    # Independent check of the statistics on the same points.
    stats = pytest.importorskip("scipy.stats")
    rho = stats.spearmanr(ranking["proxy"], ranking["full"]).statistic
    tau = stats.kendalltau(ranking["proxy"], ranking["full"], variant="b").statistic
    assert ranking["spearman"]["value"] == pytest.approx(rho, abs=1e-12)
    assert ranking["kendall_tau_b"]["value"] == pytest.approx(tau, abs=1e-12)
    ci = ranking["spearman"]["ci"]
    assert ci["low"] <= ranking["spearman"]["value"] <= ci["high"]
    cost = report["cost"]
    assert cost["probes_seconds"] == 9410.0
    assert cost["selection_seconds"] == 57.0
    # Proxy-only candidates (but the probe, measured) and the pruned one, from the time ratio.
    assert cost["estimate_methods"]["time_ratio"] == 4
    assert cost["speedup"] > 0

    browser = chromium()
    page = (out / "report.html").as_uri()
    profile = tmp_path / "profile"
    dom = subprocess.run(
        [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", page],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert dom.returncode == 0, dom.stderr[-2000:]
    html_tag = re.search(r"<html[^>]*>", dom.stdout).group(0)
    assert f'data-report-ready="{RANKED}"' in html_tag, html_tag
    assert "data-js-errors" not in html_tag, html_tag
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line]
    assert not console, console
    assert dom.stdout.count('<circle class="pt') == RANKED
    assert dom.stdout.count('<rect class="cell') == RANKED * RANKED
    assert dom.stdout.count('class="rug"') == 3  # proxy-only candidates
    assert dom.stdout.count("<tr data-id=") == 12  # 11 configurations + the unsearched probe
    assert 'id="record-count">11<' in dom.stdout

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    snap = subprocess.run(
        [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--hide-scrollbars",
         "--window-size=1280,2300", f"--screenshot={shot}", page],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert snap.returncode == 0, snap.stderr[-2000:]
    assert shot.is_file() and shot.stat().st_size > 10_000


def test_no_spot_checks_still_renders(tmp_path: Path) -> None:
    folder = tmp_path / "exp"
    folder.mkdir()
    lines = [json.dumps(record(i, row)) for i, row in enumerate(PROXY_ONLY)]
    (folder / "results.jsonl").write_text("\n".join(lines) + "\n")
    run_report("--results", str(folder), "--bootstrap", "100")
    report = json.loads((folder / "report.json").read_text())
    assert report["ranking"]["n"] == 0
    assert report["verdict"]["level"] == "none"
    assert "No ranking evidence" in (folder / "report.html").read_text()


def test_missing_or_empty_store_exits_2(tmp_path: Path) -> None:
    missing = run_report("--results", str(tmp_path / "none"), check=False)
    assert missing.returncode == 2
    assert "no results store" in missing.stderr
    (tmp_path / "results.jsonl").write_text("")
    empty = run_report("--results", str(tmp_path), check=False)
    assert empty.returncode == 2
    assert "no complete records" in empty.stderr


def test_watch_refreshes_and_stops_on_sigint(tmp_path: Path) -> None:
    need_binary()
    store = write_store(tmp_path / "exp", torn_tail=False)
    report_json = store / "report.json"
    proc = subprocess.Popen(
        [str(BINARY), "report", "--results", str(store), "--bootstrap", "50", "--watch", "0.2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:

        def wait_for_records(n: int) -> None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if json.loads(report_json.read_text())["records"] == n:
                        return
                except (FileNotFoundError, json.JSONDecodeError):
                    pass
                time.sleep(0.1)
            pytest.fail(f"report.json never showed {n} records")

        wait_for_records(11)
        with open(store / "results.jsonl", "a") as f:
            f.write(json.dumps(record(50, ("B8_K5_M4", 0.74, 0.87, 45.0, 470.0, 25_000_000))))
            f.write("\n")
        wait_for_records(12)
        assert 'http-equiv="refresh"' in (store / "report.html").read_text()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "stopped watching" in proc.stderr.read()
