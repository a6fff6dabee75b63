"""dataproxy-trial-client, NNI's trial command, and the trial servers behind it
(`dataproxy-trial --serve --listen`): the socket protocol; served trials give the same results
as a process per trial, reuse their slot's server and pay start-up and data once; SIGINT of a
client stops its candidate on the server, which goes on; a killed server fails its trial, leaves
the store readable and is replaced by the next client; two concurrent clients train at once on
two servers. NNI is the fake HTTP command channel of test_trial_runner.py.

Needs the built programs and Fashion-MNIST, as test_trial_runner.py.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from test_trial_runner import (  # noqa: F401  (proxy is a fixture)
    GOOD,
    TRIAL,
    FakeNni,
    events,
    nni_env,
    proxy,
    read_store,
    trained_args,
)

CLIENT = Path(os.environ.get("DATAPROXY_TRIAL_CLIENT_BIN", TRIAL.parent / "dataproxy-trial-client"))
pytestmark = pytest.mark.skipif(
    not (TRIAL.is_file() and CLIENT.is_file()), reason=f"build {TRIAL} and {CLIENT} first"
)

OTHER = {"B": 8, "K": 3, "M": 2}
TERMINAL = {"final", "pruned", "interrupted", "error"}


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def pids():
    """Server processes the test saw; whatever is left is ended."""
    seen: list[int] = []
    yield seen
    for pid in seen:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if not alive(pid):
                break
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                break
            wait_gone(pid, 5)


def client_args(manifest: Path, data: Path, *extra: str) -> list[str]:
    args = trained_args(manifest, data)
    i = args.index("--manifest")
    del args[i : i + 2]  # the tuner sends it
    return [*args, "--seed", "3", "--idle-exit", "60", *extra]


def nni_params(params: dict, manifest: Path, results: Path, **reserved) -> dict:
    return {
        **params,
        "_dataproxy": {
            "spot_check": False,
            "manifest": str(manifest),
            "results": str(results),
            **reserved,
        },
    }


class Trial:
    """One client process, as NNI starts it, with its own command channel."""

    def __init__(self, tmp_path: Path, args: list[str], params: dict, parameter_id: int, job: str):
        self.nni = FakeNni()
        self.nni.send_parameters(params, parameter_id=parameter_id)
        env = nni_env(tmp_path, self.nni.url)
        env["NNI_TRIAL_JOB_ID"] = job
        self.proc = subprocess.Popen(
            [str(CLIENT), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: list[dict] = []
        self.stderr = ""

    def until(self, kind: str) -> dict:
        """Reads events until one of `kind`."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("{"):
                self.lines.append(json.loads(line))
                if self.lines[-1]["event"] == kind:
                    return self.lines[-1]
        raise AssertionError(f"no {kind} event: {self.lines} {self.proc.stderr.read()}")

    def finish(self, timeout: float = 300) -> int:
        out, self.stderr = self.proc.communicate(timeout=timeout)
        self.lines += events(out)
        self.nni.close()
        return self.proc.returncode

    def server(self) -> dict:
        return next(e for e in self.lines if e["event"] == "server")


def run(tmp_path, args, params, parameter_id, job, pids) -> Trial:
    trial = Trial(tmp_path, args, params, parameter_id, job)
    code = trial.finish()
    assert code == 0, trial.stderr
    pids.append(trial.server()["pid"])
    return trial


def test_served_trials_reuse_their_server_and_match_a_process_per_trial(
    proxy,  # noqa: F811
    tmp_path,
    pids,
):
    manifest, data = proxy
    args = client_args(manifest, data, "--epochs", "2")
    served, alone = tmp_path / "served", tmp_path / "alone"
    trials = []
    for results, serve in ((served, True), (alone, False)):
        first = run(tmp_path, args, nni_params(GOOD, manifest, results, serve=serve), 1, "j1", pids)
        second = run(
            tmp_path,
            args,
            nni_params(OTHER, manifest, results, serve=serve, spot_check=True),
            2,
            "j2",
            pids,
        )
        trials.append((first, second))
    (s1, s2), (a1, a2) = trials
    # One server for the slot, started by the first trial; a process per trial otherwise.
    assert s1.server()["mode"] == "served" and s1.server()["started"] is True
    assert s2.server()["started"] is False and s2.server()["pid"] == s1.server()["pid"]
    assert s2.server()["served"] == 1
    assert a1.server()["mode"] == "process" and a1.server()["pid"] != a2.server()["pid"]

    for trial, pid, job in ((s1, 1, "j1"), (s2, 2, "j2"), (a1, 1, "j1")):
        metrics = trial.nni.metrics()
        assert [m["type"] for m in metrics] == ["PERIODICAL", "PERIODICAL", "FINAL"]
        assert [m["sequence"] for m in metrics] == [0, 1, 0]
        assert all(m["parameter_id"] == pid and m["trial_job_id"] == job for m in metrics)
        final = [e for e in trial.lines if e["event"] == "final"][0]
        assert metrics[-1]["value"]["default"] == final["proxy_accuracy"]
        assert (
            metrics[0]["value"]
            == [e for e in trial.lines if e["event"] == "epoch"][0]["test_accuracy"]
        )
    assert s2.nni.metrics()[-1]["value"]["full_accuracy"] is not None

    records = read_store(served)
    assert [(r["trial_id"], r["parameter_id"], r["framework"]) for r in records] == [
        ("j1", 1, "nni"),
        ("j2", 2, "nni"),
    ]
    assert all(r["nni"]["experiment_id"] == "expid" for r in records)
    assert records[1]["nni"]["trial_job_id"] == "j2"
    # What each trial paid: the first the server's start and the data, the second neither.
    t1, t2 = records[0]["timing"], records[1]["timing"]
    assert t1["startup"] > t2["startup"] > 0 and t1["data"] > t2["data"]
    # The same seeds give the same results either way.
    for one, serve in zip(read_store(alone), records):
        assert one["status"] == serve["status"] == "complete"
        for key in ("proxy_accuracy", "full_accuracy", "proxy_curve", "config_id", "parameter_id"):
            assert one[key] == serve[key], key
        assert one["training"]["full_curve"] == serve["training"]["full_curve"]
        assert one["timing"]["data"] > 0  # each process loads the data


def test_sigint_of_a_client_interrupts_its_candidate_and_the_server_goes_on(
    proxy,  # noqa: F811
    tmp_path,
    pids,
):
    manifest, data = proxy
    results = tmp_path / "results"
    args = client_args(manifest, data, "--epochs", "50")
    trial = Trial(tmp_path, args, nni_params(GOOD, manifest, results), 3, "j3")
    server = trial.until("server")
    pids.append(server["pid"])
    trial.until("epoch")
    started = time.monotonic()
    trial.proc.send_signal(signal.SIGINT)
    assert trial.finish(timeout=60) == 130, trial.stderr
    assert time.monotonic() - started < 5  # NNI kills 5 s after SIGINT
    assert trial.lines[-1]["event"] == "interrupted" and trial.lines[-1]["recorded"] is True
    assert [m["type"] for m in trial.nni.metrics()].count("FINAL") == 0
    assert alive(server["pid"])
    # The next trial trains on the same server.
    again = run(tmp_path, args, nni_params(OTHER, manifest, results, proxy_epochs=1), 4, "j4", pids)
    assert again.server()["pid"] == server["pid"] and again.server()["started"] is False
    records = read_store(results)
    assert [(r["trial_id"], r["status"]) for r in records] == [
        ("j3", "interrupted"),
        ("j4", "complete"),
    ]
    assert 1 <= len(records[0]["proxy_curve"]) < 50


def test_a_killed_server_fails_its_trial_and_the_next_client_starts_another(
    proxy,  # noqa: F811
    tmp_path,
    pids,
):
    manifest, data = proxy
    results = tmp_path / "results"
    args = client_args(manifest, data, "--epochs", "50")
    first = run(tmp_path, args, nni_params(GOOD, manifest, results, proxy_epochs=1), 5, "j5", pids)
    trial = Trial(tmp_path, args, nni_params(OTHER, manifest, results), 6, "j6")
    server = trial.until("server")
    trial.until("epoch")
    os.kill(server["pid"], signal.SIGKILL)
    assert trial.finish(timeout=30) == 1
    assert "ended during the candidate" in trial.stderr, trial.stderr
    assert wait_gone(server["pid"], 10)
    # The store is readable and holds what was recorded; the next trial gets a new server.
    after = run(tmp_path, args, nni_params(OTHER, manifest, results, proxy_epochs=1), 7, "j7", pids)
    assert after.server()["started"] is True and after.server()["pid"] != server["pid"]
    assert after.server()["slot"] == first.server()["slot"] == 0
    records = read_store(results)
    assert [(r["trial_id"], r["status"]) for r in records] == [
        ("j5", "complete"),
        ("j7", "complete"),
    ]


def test_two_concurrent_clients_train_at_once_on_two_servers(
    proxy,  # noqa: F811
    tmp_path,
    pids,
):
    manifest, data = proxy
    results = tmp_path / "results"
    args = client_args(manifest, data, "--epochs", "2")
    a = Trial(tmp_path, args, nni_params(GOOD, manifest, results), 8, "j8")
    b = Trial(tmp_path, args, nni_params(OTHER, manifest, results), 9, "j9")
    servers = [a.until("server"), b.until("server")]
    pids.extend(s["pid"] for s in servers)
    # Both candidates train while neither has finished.
    a.until("epoch")
    b.until("epoch")
    assert not [e for e in a.lines + b.lines if e["event"] in TERMINAL]
    assert a.finish() == 0 and b.finish() == 0, a.stderr + b.stderr
    assert {s["slot"] for s in servers} == {0, 1}
    assert servers[0]["pid"] != servers[1]["pid"]
    assert all(s["started"] for s in servers)
    records = read_store(results)
    assert sorted((r["trial_id"], r["parameter_id"], r["status"]) for r in records) == [
        ("j8", 8, "complete"),
        ("j9", 9, "complete"),
    ]
    # The experiment ends: the tuner writes the stop file and the idle servers exit.
    (results / "servers" / "shutdown").write_text("the experiment ended\n")
    assert all(wait_gone(s["pid"], 10) for s in servers)


# ---- the server's socket protocol, spoken directly -------------------------------------------


def connect(name: str, timeout: float = 60) -> socket.socket:
    deadline = time.monotonic() + timeout
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect("\0" + name)
            return s
        except OSError:
            s.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def exchange(name: str, request: str, on_epoch=None) -> list[dict]:
    with connect(name) as s:
        f = s.makefile("rw")
        accepted = json.loads(f.readline())
        assert accepted["event"] == "accepted" and accepted["pid"] > 0
        f.write(request + "\n")
        f.flush()
        got = []
        for line in f:
            got.append(json.loads(line))
            if got[-1]["event"] == "epoch" and on_epoch is not None:
                on_epoch(f)
                on_epoch = None
        return got  # the server closes the connection after the terminal event


def test_the_socket_protocol(proxy, tmp_path):  # noqa: F811
    manifest, data = proxy
    results = tmp_path / "results"
    stop = tmp_path / "stop"
    name = f"dataproxy-test/{os.getpid()}/{tmp_path.name}"
    argv = [str(TRIAL), "--serve", "--listen", name, "--stop-file", str(stop)]
    argv += [*trained_args(manifest, data), "--results", str(results), "--epochs", "1"]
    server = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        begun = time.clock_gettime(time.CLOCK_BOOTTIME) - 1.5
        request = {
            "params": GOOD,
            "trial_id": "p1",
            "framework": "nni",
            "parameter_id": 9,
            "nni": {"experiment_id": "e", "trial_job_id": "p1", "seq_id": "4"},
            "started_boottime": begun,
        }
        done = exchange(name, json.dumps(request))
        assert done[0]["event"] == "start" and done[0]["parameter_id"] == 9
        assert done[-1]["event"] == "final" and done[-1]["timing"]["startup"] >= 1.5
        bad = exchange(name, json.dumps({"params": GOOD, "started_boottime": "soon"}))
        assert [e["event"] for e in bad] == ["error"] and bad[0]["exit_code"] == 2
        assert "started_boottime" in bad[0]["message"]

        def interrupt(f):
            f.write('{"control": "interrupt"}\n')
            f.flush()

        stopped = exchange(
            name, json.dumps({"params": OTHER, "trial_id": "p2", "epochs": 50}), interrupt
        )
        assert stopped[-1]["event"] == "interrupted"
        # A second server cannot take the name.
        twin = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        assert twin.returncode == 1 and "another trial server holds it" in twin.stderr
        stop.write_text("")
        assert server.wait(timeout=10) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    records = read_store(results)
    assert [(r["trial_id"], r["status"]) for r in records] == [
        ("p1", "complete"),
        ("p2", "interrupted"),
    ]
    assert records[0]["parameter_id"] == 9
    assert records[0]["nni"] == {"experiment_id": "e", "trial_job_id": "p1", "seq_id": "4"}
    assert records[0]["timing"]["startup"] >= 1.5


def test_an_idle_server_exits_on_its_own(proxy, tmp_path):  # noqa: F811
    manifest, data = proxy
    name = f"dataproxy-test/{os.getpid()}/{tmp_path.name}"
    argv = [str(TRIAL), "--serve", "--listen", name, "--idle-exit", "1"]
    server = subprocess.run(
        [*argv, *trained_args(manifest, data)], capture_output=True, text=True, timeout=120
    )
    assert server.returncode == 0 and "idle for 1 s" in server.stderr, server.stderr


def test_the_client_refuses_what_is_not_for_it(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NNI_")}
    outside = subprocess.run([str(CLIENT)], capture_output=True, text=True, env=env, timeout=30)
    assert outside.returncode == 2 and "runs under NNI" in outside.stderr
    params = subprocess.run(
        [str(CLIENT), "--params", "{}"], capture_output=True, text=True, env=env, timeout=30
    )
    assert params.returncode == 2 and "--params is not for dataproxy-trial-client" in params.stderr
    missing = subprocess.run(
        [str(CLIENT), "--trial-bin", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert missing.returncode == 2 and "--trial-bin" in missing.stderr


def test_the_client_does_not_load_libtorch():
    """NNI starts it per trial: it must start in milliseconds, without LibTorch."""
    libraries = subprocess.run(["ldd", str(CLIENT)], capture_output=True, text=True, timeout=30)
    assert libraries.returncode == 0, libraries.stderr
    assert "libcurl" in libraries.stdout
    assert "libtorch" not in libraries.stdout and "libc10" not in libraries.stdout
