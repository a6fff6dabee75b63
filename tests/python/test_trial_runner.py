"""dataproxy-trial as a program: its command line, its JSON Lines, its results record, and NNI's
HTTP command channel played by a loopback server. Bad input must give a clear message and a
non-zero exit, and leave the results store as it was.

Needs the built programs (DATAPROXY_BUILD_DIR, default <repo>/build); the tests that train need
Fashion-MNIST under DATAPROXY_DATA_ROOT (default <repo>/data).
"""

from __future__ import annotations

import gzip
import json
import os
import queue
import signal
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

pytestmark = pytest.mark.skipif(not TRIAL.is_file(), reason=f"build {TRIAL} first")


class FakeNni:
    """NNI's trial command channel: PUTs recorded, GETs answered from a queue or 408."""

    def __init__(self) -> None:
        self.puts: list[dict] = []
        self.answers: queue.Queue = queue.Queue()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_PUT(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                fake.puts.append(
                    {"content_type": self.headers.get("Content-Type"), "body": json.loads(body)}
                )
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:
                try:
                    status, body = fake.answers.get(timeout=0.2)
                except queue.Empty:
                    status, body = 408, ""
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://localhost:{self.server.server_address[1]}/env/local-env/tRiAl"

    def send_parameters(self, params: dict, parameter_id: int = 5) -> None:
        record = {
            "parameter_id": parameter_id,
            "parameter_source": "algorithm",
            "parameters": params,
            "parameter_index": 0,
        }
        self.answers.put((200, json.dumps({"type": "parameter", "parameter": json.dumps(record)})))

    def metrics(self) -> list[dict]:
        out = []
        for put in self.puts:
            if put["body"].get("type") == "metric":
                metric = json.loads(put["body"]["metric"])
                metric["value"] = json.loads(metric["value"])
                out.append(metric)
        return out

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_nni():
    server = FakeNni()
    yield server
    server.close()


def nni_env(tmp_path: Path, url: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NNI_")}
    env.update(
        NNI_PLATFORM="local",
        NNI_TRIAL_JOB_ID="tRiAl",
        NNI_EXP_ID="expid",
        NNI_TRIAL_SEQ_ID="0",
        NNI_SYS_DIR=str(tmp_path),
        NNI_OUTPUT_DIR=str(tmp_path),
        NNI_TRIAL_COMMAND_CHANNEL=url,
        http_proxy="http://127.0.0.1:9",  # must be bypassed for the channel
    )
    return env


def run_trial(args: list[str], env: dict | None = None, timeout: float = 300):
    if env is None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NNI_")}
    return subprocess.run(
        [str(TRIAL), *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def base_args(tmp_path: Path, manifest: str | Path = "/nonexistent/manifest.json") -> list[str]:
    return [
        "--space",
        str(SPACE),
        "--data-root",
        str(tmp_path / "data"),
        "--manifest",
        str(manifest),
        "--threads",
        "1",
        "--report",
        "jsonl",
    ]


def assert_error(result, code: int, *fragments: str) -> None:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "dataproxy-trial: error: " in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)


# ---- bad input, no training needed ------------------------------------------------------------


def test_parameters_outside_the_space(tmp_path):
    results = tmp_path / "results"
    result = run_trial(
        [
            *base_args(tmp_path),
            "--params",
            json.dumps({"B": 5, "K": 3, "M": 1}),
            "--results",
            str(results),
        ]
    )
    assert_error(result, 2, "B")
    assert not (results / "results.jsonl").exists()


def test_unknown_parameter_and_bad_json(tmp_path):
    assert_error(run_trial([*base_args(tmp_path), "--params", json.dumps({**GOOD, "Z": 1})]), 2)
    assert_error(run_trial([*base_args(tmp_path), "--params", "{B: 4"]), 2, "--params")
    assert_error(
        run_trial([*base_args(tmp_path), "--params", "{}", "--params-file", "x"]), 2, "not both"
    )


def test_reserved_key_with_unknown_setting(tmp_path):
    params = {**GOOD, "_dataproxy": {"spot_chek": True}}
    assert_error(run_trial([*base_args(tmp_path), "--params", json.dumps(params)]), 2, "spot_chek")


def test_missing_manifest(tmp_path):
    result = run_trial([*base_args(tmp_path), "--params", json.dumps(GOOD)])
    assert_error(result, 2, "no manifest at /nonexistent/manifest.json", "dataproxy generate")


def test_no_parameters_outside_nni(tmp_path):
    assert_error(run_trial(base_args(tmp_path)), 2, "--params")


def test_malformed_parameter_message(tmp_path, fake_nni):
    fake_nni.answers.put((200, json.dumps({"type": "parameter", "parameter": "{not json"})))
    result = run_trial(base_args(tmp_path), env=nni_env(tmp_path, fake_nni.url))
    assert_error(result, 2, "not JSON", fake_nni.url)
    assert fake_nni.puts[0]["body"] == {"type": "request_parameter"}
    assert fake_nni.puts[0]["content_type"] == "application/json"
    assert fake_nni.metrics() == []


def test_channel_parameters_outside_the_space(tmp_path, fake_nni):
    fake_nni.send_parameters({"B": 4, "K": 7, "M": 1})
    result = run_trial(base_args(tmp_path), env=nni_env(tmp_path, fake_nni.url))
    assert_error(result, 2, "K")
    assert fake_nni.metrics() == []


def test_unreachable_channel_fails_after_bounded_retries(tmp_path):
    closed = FakeNni()
    url = closed.url
    closed.close()
    started = time.monotonic()
    result = run_trial(base_args(tmp_path), env=nni_env(tmp_path, url), timeout=60)
    assert_error(result, 1, "cannot reach", url)
    assert time.monotonic() - started < 30


def test_closed_channel(tmp_path, fake_nni):
    fake_nni.answers.put((410, ""))
    assert_error(run_trial(base_args(tmp_path), env=nni_env(tmp_path, fake_nni.url)), 1, "410")


def test_sigint_while_waiting_for_parameters(tmp_path, fake_nni):
    proc = subprocess.Popen(
        [str(TRIAL), *base_args(tmp_path)],
        env=nni_env(tmp_path, fake_nni.url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not fake_nni.puts and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, (out, err)
    assert events(out)[-1]["event"] == "interrupted"


# ---- with a real proxy ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    if not DATAPROXY.is_file():
        pytest.skip(f"build {DATAPROXY} first")
    data = fashion_mnist_root()
    if data is None:
        pytest.skip("Fashion-MNIST not found (set DATAPROXY_DATA_ROOT)")
    cache = tmp_path_factory.mktemp("cache")
    argv = [
        str(DATAPROXY),
        "generate",
        "--space",
        str(SPACE),
        "--dataset",
        "fashion-mnist",
        "--data-root",
        str(data),
        "--ratio",
        "0.25",
        "--max-train",
        "600",
        "--max-test",
        "300",
        "--probe-epochs",
        "1",
        "--threads",
        "2",
        "--cache",
        str(cache),
        "--report",
        "quiet",
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    event = json.loads(done.stdout.strip().splitlines()[-1])
    assert event["event"] == "manifest"
    return Path(event["path"]), data


def trained_args(manifest: Path, data: Path) -> list[str]:
    return [
        "--space",
        str(SPACE),
        "--data-root",
        str(data),
        "--manifest",
        str(manifest),
        "--threads",
        "1",
        "--report",
        "jsonl",
    ]


def read_store(folder: Path) -> list[dict]:
    path = folder / "results.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_standalone_trial_and_spot_check(proxy, tmp_path):
    manifest, data = proxy
    results = tmp_path / "results"
    args = [*trained_args(manifest, data), "--results", str(results), "--epochs", "1"]
    first = run_trial([*args, "--params", json.dumps(GOOD), "--trial-id", "t1"])
    assert first.returncode == 0, first.stderr
    evs = events(first.stdout)
    assert evs[0]["event"] == "start" and evs[0]["config_id"]
    epochs = [e for e in evs if e["event"] == "epoch"]
    assert [e["phase"] for e in epochs] == ["proxy"]
    assert epochs[0]["epochs"] == 1 and 0.0 <= epochs[0]["test_accuracy"] <= 1.0
    final = evs[-1]
    assert final["event"] == "final" and final["status"] == "complete"
    assert final["spot_check"] is False and final["full_accuracy"] is None
    assert final["proxy_accuracy"] == epochs[-1]["test_accuracy"]

    second = run_trial([*args, "--params", json.dumps({"B": 16, "K": 5, "M": 2}), "--spot-check"])
    assert second.returncode == 0, second.stderr
    evs = events(second.stdout)
    assert [e["phase"] for e in evs if e["event"] == "epoch"] == ["proxy", "full"]
    final = evs[-1]
    assert final["spot_check"] is True and isinstance(final["full_accuracy"], float)
    assert final["framework"] == "standalone"

    records = read_store(results)
    assert [r["trial_id"] for r in records][0] == "t1"
    assert [r["spot_check"] for r in records] == [False, True]
    assert all(r["status"] == "complete" for r in records)
    assert records[1]["full_accuracy"] == final["full_accuracy"]
    # The correlation counts the spot check and any probe whose config has a proxy accuracy.
    assert final["n_spot_checks"] >= 1


def test_nni_trial_over_http(proxy, tmp_path, fake_nni):
    manifest, data = proxy
    results = tmp_path / "results"
    params = {
        **GOOD,
        "_dataproxy": {"spot_check": False, "manifest": str(manifest), "results": str(results)},
    }
    fake_nni.send_parameters(params, parameter_id=7)
    args = [a for a in trained_args(manifest, data)]
    i = args.index("--manifest")
    del args[i : i + 2]  # the tuner sends it
    result = run_trial([*args, "--epochs", "2"], env=nni_env(tmp_path, fake_nni.url))
    assert result.returncode == 0, result.stderr
    metrics = fake_nni.metrics()
    assert [m["type"] for m in metrics] == ["PERIODICAL", "PERIODICAL", "FINAL"]
    assert [m["sequence"] for m in metrics] == [0, 1, 0]
    assert all(m["parameter_id"] == 7 and m["trial_job_id"] == "tRiAl" for m in metrics)
    final = metrics[-1]["value"]
    assert isinstance(final["default"], float)
    assert final["spot_check"] is False and final["full_accuracy"] is None
    assert "spearman" in final and "kendall" in final and "n_spot_checks" in final
    records = read_store(results)
    assert len(records) == 1
    assert records[0]["trial_id"] == "tRiAl" and records[0]["parameter_id"] == 7
    assert records[0]["framework"] == "nni"


def test_proxy_epochs_apply_to_the_proxy_phase_only(proxy, tmp_path):
    """A calibrated proxy length: the proxy trains proxy_epochs, the spot check --epochs."""
    manifest, data = proxy
    results = tmp_path / "results"
    params = {**GOOD, "_dataproxy": {"spot_check": True, "proxy_epochs": 3}}
    args = trained_args(manifest, data)
    result = run_trial(
        [*args, "--params", json.dumps(params), "--epochs", "1", "--results", str(results)]
    )
    assert result.returncode == 0, result.stderr
    (record,) = read_store(results)
    assert len(record["proxy_curve"]) == 3
    assert len(record["training"]["full_curve"]) == 1
    assert record["training"]["proxy_epochs"] == 3 and record["training"]["epochs"] == 1
    bad = {**GOOD, "_dataproxy": {"proxy_epochs": 0}}
    assert_error(run_trial([*args, "--params", json.dumps(bad)]), 2, "proxy_epochs")


def test_proxy_steps_stop_the_proxy_phase_mid_epoch(proxy, tmp_path):
    """A calibrated length that is not whole epochs (e.g. the full data for 5% of the steps):
    the proxy phase stops after that many optimizer steps; a spot check still trains --epochs."""
    manifest, data = proxy
    args = trained_args(manifest, data)
    # The proxy holds 150 images: batches of 64, 64 and 22; step 4 is the next epoch's first.
    alone = tmp_path / "alone"
    result = run_trial(
        [*args, "--params", json.dumps(GOOD), "--proxy-steps", "4", "--results", str(alone)]
    )
    assert result.returncode == 0, result.stderr
    (record,) = read_store(alone)
    assert record["training"]["steps"] == 4
    assert record["training"]["samples_seen"] == 150 + 64
    assert len(record["proxy_curve"]) == 2 and record["training"]["proxy_epochs"] == 2

    checked = tmp_path / "checked"
    params = {**GOOD, "_dataproxy": {"spot_check": True, "proxy_steps": 4}}
    result = run_trial(
        [*args, "--params", json.dumps(params), "--epochs", "1", "--results", str(checked)]
    )
    assert result.returncode == 0, result.stderr
    (record,) = read_store(checked)
    assert len(record["proxy_curve"]) == 2 and record["training"]["proxy_epochs"] == 2
    assert len(record["training"]["full_curve"]) == 1 and record["training"]["epochs"] == 1
    bad = {**GOOD, "_dataproxy": {"proxy_steps": 0}}
    assert_error(run_trial([*args, "--params", json.dumps(bad)]), 2, "proxy_steps")
    assert_error(
        run_trial([*args, "--params", json.dumps(GOOD), "--proxy-steps", "-1"]), 2, "--proxy-steps"
    )


def foreign_copy(data: Path, folder: Path) -> None:
    """Fashion-MNIST with the official sizes but other pixels in the first images."""
    source = data / "fashion-mnist" if (data / "fashion-mnist").is_dir() else data
    folder.mkdir(parents=True, exist_ok=True)
    for path in source.glob("*-ubyte*"):
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
        name = path.name.removesuffix(".gz")
        if name.startswith("train-images"):
            pixels = bytearray(raw)
            for i in range(16, 16 + 28 * 28 * 10):
                pixels[i] = 255 - pixels[i]
            raw = bytes(pixels)
        (folder / name).write_bytes(raw)


def test_foreign_data_is_refused(proxy, tmp_path):
    manifest, data = proxy
    foreign = tmp_path / "foreign"
    foreign_copy(data, foreign / "fashion-mnist")
    results = tmp_path / "results"
    args = [*trained_args(manifest, foreign), "--results", str(results), "--epochs", "1"]
    result = run_trial([*args, "--params", json.dumps(GOOD)])
    assert_error(result, 2, "fingerprint")


@pytest.mark.parametrize(
    ("sig", "code", "status"),
    [(signal.SIGINT, 130, "interrupted"), (signal.SIGUSR1, 0, "pruned")],
    ids=["sigint-interrupts", "sigusr1-prunes"],
)
def test_a_signal_during_training_stops_it_and_records_why(proxy, tmp_path, sig, code, status):
    manifest, data = proxy
    results = tmp_path / "results"
    args = [*trained_args(manifest, data), "--results", str(results), "--epochs", "50"]
    proc = subprocess.Popen(
        [str(TRIAL), *args, "--params", json.dumps(GOOD)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if '"event":"epoch"' in line.replace(" ", ""):
            break
    proc.send_signal(sig)
    rest, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert events(rest)[-1]["event"] == status
    records = read_store(results)
    assert len(records) == 1 and records[0]["status"] == status
    assert 1 <= len(records[0]["proxy_curve"]) < 50


def test_a_manifest_built_for_another_space_is_refused(proxy, tmp_path):
    manifest, data = proxy
    other = tmp_path / "other_space.yaml"
    # The same parameters and family, another training schedule: another space hash.
    text = SPACE.read_text()
    assert "epochs:" in text
    other.write_text(text.replace("epochs:", "epochs: 7\n  # was:", 1))
    results = tmp_path / "results"
    args = trained_args(manifest, data)
    args[args.index("--space") + 1] = str(other)
    result = run_trial([*args, "--results", str(results), "--params", json.dumps(GOOD)])
    assert_error(result, 2, "was built for search space", str(other), "generate a proxy")
    assert not (results / "results.jsonl").exists()


def test_a_trial_handed_another_trials_parameters_is_caught_by_the_tuner(proxy, tmp_path):
    """NNI issue #5693 played for real: the tuner issues two sets, NNI hands the trial of id 0
    the set of id 1, the real runner trains it and reports under id 0; the tuner finds out from
    the runner's record and keeps that accuracy away from the wrapped tuner."""
    pytest.importorskip("nni")
    from dataproxy.nni.tuner import RESERVED_KEY, DataProxyTuner
    from dataproxy.space import load_space

    manifest, data = proxy
    results = tmp_path / "results"
    tuner = DataProxyTuner(
        space=str(SPACE),
        dataset="fashion-mnist",
        data_root=str(data),
        manifest=str(manifest),
        results_dir=str(results),
        builtin_tuner="GridSearch",
        report=False,
    )
    tuner.update_search_space(load_space(SPACE).to_nni())
    issued = tuner.generate_multiple_parameters([0, 1])
    configs = [{k: v for k, v in p.items() if k != RESERVED_KEY} for p in issued]
    assert configs[0] != configs[1]
    fed = []
    tuner.inner.receive_trial_result = lambda pid, *a, **k: fed.append(pid)
    args = trained_args(manifest, data)
    i = args.index("--manifest")
    del args[i : i + 2]  # the tuner sends it

    values = {}
    for trial, (parameter_id, params) in enumerate([(0, issued[1]), (1, issued[1])]):
        nni = FakeNni()
        try:
            nni.send_parameters(params, parameter_id=parameter_id)
            env = {**nni_env(tmp_path, nni.url), "NNI_TRIAL_JOB_ID": f"job{trial}"}
            done = run_trial([*args, "--epochs", "1"], env=env)
            assert done.returncode == 0, done.stderr
            final = [m for m in nni.metrics() if m["type"] == "FINAL"]
        finally:
            nni.close()
        assert [m["parameter_id"] for m in final] == [parameter_id]
        values[parameter_id] = final[0]["value"]
        # What NNI's dispatcher does with a FINAL metric: the parameters it issued under that id.
        tuner.receive_trial_result(parameter_id, issued[parameter_id], values[parameter_id])

    assert tuner.mismatches == [
        {"parameter_id": 0, "issued": configs[0], "trained": configs[1], "source": "results store"}
    ]
    assert fed == [1]
    records = {r["parameter_id"]: r for r in read_store(results)}
    assert records[0]["config"] == configs[1] and records[1]["config"] == configs[1]
    assert values[1]["default"] == records[1]["proxy_accuracy"]


def test_epochs_evaluate_a_subset_and_every_record_carries_the_wall_time_split(proxy, tmp_path):
    manifest, data = proxy
    results = tmp_path / "results"
    args = [*trained_args(manifest, data), "--results", str(results), "--epochs", "3"]
    args += ["--params", json.dumps(GOOD), "--seed", "3"]
    subset = run_trial([*args, "--eval-subset", "40", "--trial-id", "subset"])
    assert subset.returncode == 0, subset.stderr
    evs = events(subset.stdout)
    epochs = [e for e in evs if e["event"] == "epoch"]
    whole = epochs[-1]["eval_samples"]
    assert whole > 40, "the fixture's ranking split must be larger than the subset"
    assert [e["eval_samples"] for e in epochs] == [40, 40, whole]
    final = evs[-1]
    split = final["timing"]
    assert split["eval_subset"] == 40 and split["eval_final"] == whole
    for key in ("startup", "data", "train", "eval", "write", "total"):
        assert split[key] >= 0, key
    assert split["startup"] > 0 and split["train"] > 0 and split["eval"] > 0
    parts = sum(split[k] for k in ("startup", "data", "train", "eval", "write"))
    assert split["total"] >= parts - 1e-6

    every = run_trial([*args, "--eval-subset", "0", "--trial-id", "whole"])
    assert every.returncode == 0, every.stderr
    evs_whole = events(every.stdout)
    assert [e["eval_samples"] for e in evs_whole if e["event"] == "epoch"] == [whole] * 3
    # What gets ranked does not depend on the subset.
    assert evs_whole[-1]["proxy_accuracy"] == final["proxy_accuracy"]

    records = {r["trial_id"]: r for r in read_store(results)}
    stored = records["subset"]["timing"]
    assert stored["eval_subset"] == 40 and stored["eval_final"] == whole
    assert stored["total"] <= split["total"], "the record is appended before the final event"
    assert records["whole"]["timing"]["eval_subset"] == 0


def test_a_negative_eval_subset_is_refused(tmp_path):
    result = run_trial([*base_args(tmp_path), "--params", json.dumps(GOOD), "--eval-subset", "-1"])
    assert_error(result, 2, "--eval-subset")


def test_a_failure_after_the_parameters_were_accepted_is_recorded(proxy, tmp_path):
    """A trial that fails while training (here: a CUDA device that does not exist) leaves a
    "failed" record saying what went wrong and in which phase, and exits non-zero."""
    manifest, data = proxy
    results = tmp_path / "results"
    args = [*trained_args(manifest, data), "--results", str(results), "--device", "cuda:99"]
    result = run_trial([*args, "--params", json.dumps(GOOD), "--trial-id", "t-fail"])
    assert result.returncode != 0
    assert "cuda:99" in result.stderr
    (rec,) = read_store(results)
    assert rec["status"] == "failed" and rec["trial_id"] == "t-fail"
    assert "cuda:99" in rec["error"]["message"]
    assert rec["error"]["phase"] == "proxy"
    assert rec["proxy_accuracy"] is None
    # The report counts it and lists the candidate as failed, unranked.
    report = subprocess.run(
        [str(DATAPROXY), "report", "--results", str(results), "--out", str(tmp_path / "report")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert report.returncode == 0, report.stderr
    body = json.loads((tmp_path / "report" / "report.json").read_text())
    assert body["record_status"] == {"failed": 1}
    (cand,) = body["candidates"]
    assert cand["status"] == "failed" and not cand["ranked"] and cand["proxy_accuracy"] is None
