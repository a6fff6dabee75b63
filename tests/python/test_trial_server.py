"""`dataproxy-trial --serve`: candidate after candidate in one process, one request a line. The
same seeds give the same accuracies as one process per trial; a bad request gets an error line
and the server goes on; SIGUSR1 prunes the current candidate only; EOF ends it; a killed server
leaves the results store readable. Then the Optuna objective on it, against one process per
trial.

Needs the built programs and Fashion-MNIST, as test_trial_runner.py.
"""

from __future__ import annotations

import json
import signal
import subprocess

import optuna
import pytest
from dataproxy.optuna import DataProxyObjective, RunnerOptions
from dataproxy.space import load_space
from test_trial_runner import (  # noqa: F401  (proxy is a fixture)
    GOOD,
    SPACE,
    TRIAL,
    events,
    proxy,
    read_store,
    run_trial,
    trained_args,
)

pytestmark = pytest.mark.skipif(not TRIAL.is_file(), reason=f"build {TRIAL} first")

OTHER = {"B": 8, "K": 3, "M": 2}
TERMINAL = {"final", "pruned", "interrupted", "error"}


def start_server(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [str(TRIAL), "--serve", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )


def answer(server: subprocess.Popen, request: str, on_epoch=None) -> list[dict]:
    """Sends one request line; returns its events up to the terminal one."""
    assert server.stdin is not None and server.stdout is not None
    server.stdin.write(request + "\n")
    server.stdin.flush()
    got = []
    for line in server.stdout:
        event = json.loads(line)
        got.append(event)
        if event["event"] == "epoch" and on_epoch is not None:
            on_epoch(event)
            on_epoch = None
        if event["event"] in TERMINAL:
            return got
    raise AssertionError(f"the server ended early: {server.stderr.read() if server.stderr else ''}")


def test_serve_answers_each_request_and_matches_one_process_per_trial(proxy, tmp_path):  # noqa: F811
    manifest, data = proxy
    served = tmp_path / "served"
    args = [*trained_args(manifest, data), "--results", str(served), "--epochs", "2"]
    server = start_server([*args, "--seed", "3"])
    try:
        first = answer(server, json.dumps({"params": GOOD, "trial_id": "s1"}))
        bad_json = answer(server, "{not json")
        bad_key = answer(server, json.dumps({"params": GOOD, "bogus": 1}))
        outside = answer(server, json.dumps({"params": {"B": 999, "K": 3, "M": 1}}))
        no_params = answer(server, json.dumps({"trial_id": "x"}))
        second = answer(
            server,
            json.dumps({"params": OTHER, "trial_id": "s2", "spot_check": True, "seed": 4}),
        )
        assert server.stdin is not None
        server.stdin.close()  # EOF: the server ends cleanly
        assert server.wait(timeout=60) == 0
    finally:
        if server.poll() is None:
            server.kill()
    assert [e["event"] for e in first][0] == "start" and first[-1]["event"] == "final"
    assert [e["epoch"] for e in first if e["event"] == "epoch"] == [1, 2]
    for reply, fragment in (
        (bad_json, "one JSON object"),
        (bad_key, 'unknown request key "bogus"'),
        (outside, "B"),
        (no_params, 'no "params"'),
    ):
        assert len(reply) == 1 and reply[0]["event"] == "error", reply
        assert reply[0]["exit_code"] == 2 and fragment in reply[0]["message"], reply
    assert second[-1]["event"] == "final" and second[-1]["spot_check"] is True
    assert second[-1]["full_accuracy"] is not None

    records = read_store(served)
    assert [r["trial_id"] for r in records] == ["s1", "s2"]
    assert all(r["status"] == "complete" for r in records)
    # Start-up and data are paid by the first candidate only.
    t1, t2 = records[0]["timing"], records[1]["timing"]
    assert t1["data"] > 0 and t2["data"] < t1["data"] and t2["startup"] < t1["startup"]
    assert records[1]["training"]["seed"] == 4

    # One process per trial, same seeds: the same curves and accuracies.
    alone = tmp_path / "alone"
    one_args = [*trained_args(manifest, data), "--results", str(alone), "--epochs", "2"]
    a = run_trial([*one_args, "--seed", "3", "--params", json.dumps(GOOD), "--trial-id", "s1"])
    b = run_trial(
        [*one_args, "--seed", "4", "--spot-check", "--params", json.dumps(OTHER)],
    )
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    for one, serve in zip(read_store(alone), records):
        for key in ("proxy_accuracy", "full_accuracy", "proxy_curve", "config_id"):
            assert one[key] == serve[key], key
        assert one["training"]["full_curve"] == serve["training"]["full_curve"]
    assert events(a.stdout)[-1]["proxy_accuracy"] == first[-1]["proxy_accuracy"]


def test_sigusr1_prunes_the_current_candidate_only_and_a_killed_server_keeps_the_store(
    proxy,  # noqa: F811
    tmp_path,
):
    manifest, data = proxy
    results = tmp_path / "results"
    server = start_server([*trained_args(manifest, data), "--results", str(results)])
    try:
        pruned = answer(
            server,
            json.dumps({"params": GOOD, "trial_id": "p", "epochs": 50}),
            on_epoch=lambda _: server.send_signal(signal.SIGUSR1),
        )
        assert pruned[-1]["event"] == "pruned"
        done = answer(server, json.dumps({"params": GOOD, "trial_id": "c", "epochs": 1}))
        assert done[-1]["event"] == "final"
        # Killed in the middle of a candidate: what was recorded stays readable.
        answer_started = []
        try:
            answer(
                server,
                json.dumps({"params": OTHER, "trial_id": "k", "epochs": 50}),
                on_epoch=lambda e: (answer_started.append(e), server.kill()),
            )
        except (AssertionError, json.JSONDecodeError):
            pass
        assert answer_started
        assert server.wait(timeout=60) == -signal.SIGKILL
    finally:
        if server.poll() is None:
            server.kill()
    records = read_store(results)
    assert [(r["trial_id"], r["status"]) for r in records] == [("p", "pruned"), ("c", "complete")]
    assert 1 <= len(records[0]["proxy_curve"]) < 50


def run_study(tmp_path, manifest, data, *, serve: bool) -> list[tuple]:
    space = load_space(SPACE)
    options = RunnerOptions(
        binary=str(TRIAL),
        manifest=str(manifest),
        space_file=str(SPACE),
        data_root=str(data),
        results_dir=str(tmp_path / ("served" if serve else "alone")),
        epochs=1,
        threads=1,
        seed=5,
        serve=serve,
    )
    objective = DataProxyObjective(space, options)
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.RandomSampler(seed=11)
    )
    try:
        study.optimize(objective, n_trials=3)
    finally:
        objective.close()
    trained = [t for t in study.trials if "duplicate_of" not in t.user_attrs]
    pids = {t.user_attrs["runner_pid"] for t in trained}
    assert len(pids) == (1 if serve else len(trained)), pids
    return [(t.params, t.value, t.user_attrs.get("proxy_accuracy")) for t in study.trials]


def test_the_optuna_objective_gives_the_same_results_served_or_one_process_per_trial(
    proxy,  # noqa: F811
    tmp_path,
):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    manifest, data = proxy
    served = run_study(tmp_path, manifest, data, serve=True)
    alone = run_study(tmp_path, manifest, data, serve=False)
    assert served == alone
    assert all(value is not None for _, value, _ in served)
