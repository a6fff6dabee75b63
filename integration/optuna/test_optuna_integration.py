"""Real Optuna, real trial runner, real data slice: SQLite with one worker, PostgreSQL with three
workers (one killed mid-trial), pruning, failures, and what optuna-dashboard reads back."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import optuna
import pytest
from dataproxy.optuna import DataProxyObjective, RunnerFailed, RunnerOptions
from dataproxy.space import load_space
from optuna.trial import TrialState
from optuna_it_support import REPO, SPACE, cli_argv

sys.path.insert(0, str(REPO / "tests" / "python"))
from optuna_support import alive, python_env, wait_gone  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def records(experiment: Path) -> list[dict]:
    path = experiment / "results.jsonl"
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def assert_trials_match_records(trials, experiment: Path) -> None:
    """Trial by trial: the runner trained the trial's parameters and Optuna holds the accuracy
    that runner measured (a stub that returns numbers, or two trials that swap results, fail)."""
    by_id = {r["trial_id"]: r for r in records(experiment)}
    by_number = {t.number: t for t in trials}
    checked = 0
    for t in trials:
        if t.state not in FINISHED:
            continue
        # A repeated configuration reuses its twin's result and trains nothing.
        source = by_number[t.user_attrs["duplicate_of"]] if "duplicate_of" in t.user_attrs else t
        record = by_id[str(source.number)]
        assert record["config"] == t.params, (t.number, record["config"], t.params)
        if t.state == TrialState.COMPLETE:
            assert record["status"] == "complete", (t.number, record)
            assert t.value == record["proxy_accuracy"], (t.number, t.value, record)
            assert t.user_attrs["proxy_accuracy"] == record["proxy_accuracy"]
        else:
            assert record["status"] == "pruned", (t.number, record)
        reported = [t.intermediate_values[k] for k in sorted(t.intermediate_values)]
        if source is t:
            assert reported == record["proxy_curve"][: len(reported)], (t.number, record)
        checked += 1
    assert checked, "no finished trial"


def runner_options(programs, data_root, manifest, experiment, **kw) -> RunnerOptions:
    return RunnerOptions(
        binary=programs["dataproxy-trial"],
        manifest=manifest["path"],
        space_file=str(SPACE),
        data_root=str(data_root),
        results_dir=str(experiment),
        device="cpu",
        threads=1,
        **kw,
    )


def dashboard_get(storage: str, path: str) -> dict:
    """GET through optuna-dashboard's own WSGI app (what its browser front end reads)."""
    from optuna_dashboard import wsgi

    app = wsgi(storage)
    environ: dict = {"PATH_INFO": path, "REQUEST_METHOD": "GET", "wsgi.input": io.BytesIO()}
    setup_testing_defaults(environ)
    status: list[str] = []
    body = b"".join(app(environ, lambda s, h, *a: status.append(s)))
    assert status[0].startswith("200"), status
    return json.loads(body)


def test_sqlite_study_one_worker_with_report_and_dashboard(
    programs, data_root, proxy_cache, manifest, tmp_path
):
    experiment = tmp_path / "exp"
    argv = cli_argv(
        data_root,
        proxy_cache,
        experiment,
        "--n-trials",
        "3",
        "--epochs",
        "2",
        "--spot-check-first",
        "1",
        "--pruner",
        "none",
        "--sampler",
        "grid",
    )
    result = subprocess.run(argv, env=python_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    report = Path(result.stdout.strip().splitlines()[-1].removeprefix("Report: "))
    assert report.exists() and report.parent == experiment / "report"
    assert (experiment / "report" / "report.json").exists()
    assert "cache hit" in result.stderr

    storage = f"sqlite:///{experiment / 'study.db'}"
    study = optuna.load_study(study_name="it", storage=storage)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3
    first = study.trials[0]
    assert first.user_attrs["spot_check"] is True
    assert 0.0 <= first.user_attrs["full_accuracy"] <= 1.0
    assert first.user_attrs["manifest_key"] == manifest["key"]
    for t in study.trials:
        assert sorted(t.intermediate_values) == [1, 2]
        assert t.value == pytest.approx(t.user_attrs["proxy_accuracy"])
        assert not alive(t.user_attrs["runner_pid"])
    by_id = {r["trial_id"]: r for r in records(experiment)}
    assert set(by_id) == {"0", "1", "2"}
    assert by_id["0"]["spot_check"] is True and by_id["0"]["framework"] == "optuna"
    assert_trials_match_records(study.trials, experiment)
    assert first.user_attrs["full_accuracy"] == by_id["0"]["full_accuracy"]

    # optuna-dashboard reads the intermediate values and user attributes back.
    studies = dashboard_get(storage, "/api/studies")["study_summaries"]
    assert [s["study_name"] for s in studies] == ["it"]
    detail = dashboard_get(storage, f"/api/studies/{studies[0]['study_id']}")
    assert detail["has_intermediate_values"] is True
    t0 = detail["trials"][0]
    assert [v["step"] for v in t0["intermediate_values"]] == [1, 2]
    attrs = {a["key"]: a["value"] for a in t0["user_attrs"]}
    assert attrs["spot_check"] == "True"
    assert "proxy_accuracy" in attrs and "manifest_key" in attrs


class _PruneAtFirstReport(optuna.pruners.BasePruner):
    def prune(self, study, trial) -> bool:
        return bool(trial.intermediate_values)


@pytest.mark.parametrize("serve", [True, False], ids=["served", "process-per-trial"])
def test_pruned_real_runner_stops_cleanly(programs, data_root, manifest, tmp_path, serve):
    options = runner_options(programs, data_root, manifest, tmp_path, epochs=3, serve=serve)
    objective = DataProxyObjective(load_space(SPACE), options, manifest_key=manifest["key"])
    study = optuna.create_study(direction="maximize", pruner=_PruneAtFirstReport())
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state == TrialState.PRUNED
    assert list(trial.intermediate_values) == [1]
    # 0: the runner took SIGUSR1 (prune), stopped at its next boundary, and recorded it.
    assert trial.user_attrs["runner_exit_code"] == 0
    pid = trial.user_attrs["runner_pid"]
    if serve:
        # Pruning stops the candidate, not the server: it waits for the next one until closed.
        assert alive(pid)
        objective.close()
    assert wait_gone(pid, timeout=5)
    statuses = [r["status"] for r in records(tmp_path)]
    assert statuses == ["pruned"]


def test_failing_real_runner_marks_fail_and_study_goes_on(programs, data_root, manifest, tmp_path):
    space = load_space(SPACE)
    bad = runner_options(programs, data_root, manifest, tmp_path, epochs=1)
    bad.manifest = str(tmp_path / "no-such-manifest.json")
    study = optuna.create_study(direction="maximize")
    study.optimize(DataProxyObjective(space, bad), n_trials=1, catch=(RunnerFailed,))
    failed = study.trials[0]
    assert failed.state == TrialState.FAIL
    assert failed.user_attrs["runner_exit_code"] == 2  # bad input: no manifest there
    assert "no-such-manifest" in failed.user_attrs["runner_stderr_tail"]

    good = runner_options(programs, data_root, manifest, tmp_path, epochs=1)
    study.optimize(DataProxyObjective(space, good), n_trials=1, catch=(RunnerFailed,))
    assert study.trials[1].state == TrialState.COMPLETE


def test_bad_input_through_the_real_programs(data_root, proxy_cache, programs, tmp_path):
    result = subprocess.run(
        cli_argv(data_root, proxy_cache, tmp_path / "exp", "--dataset", "no-such-dataset"),
        env=python_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert "proxy generation" in result.stderr and "Traceback" not in result.stderr


def _running_trial_to_kill(storage: str, coordinator: subprocess.Popen, timeout: float = 300):
    """A RUNNING trial that has not reported yet (a whole epoch still ahead), with its worker's
    and runner's pids."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert coordinator.poll() is None, "the study ended before a worker could be killed"
        try:
            study = optuna.load_study(study_name="it", storage=storage)
        except KeyError:
            time.sleep(0.2)
            continue
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if "runner_pid" in t.user_attrs and "worker" in t.user_attrs:
                if not t.intermediate_values and t.number >= 1:
                    worker_pid = int(t.user_attrs["worker"].rsplit(":", 1)[1])
                    return t.number, worker_pid, t.user_attrs["runner_pid"]
        time.sleep(0.1)
    raise AssertionError("no running trial to kill")


def test_postgres_three_workers_one_killed(
    programs, data_root, proxy_cache, manifest, postgres, tmp_path
):
    experiment = tmp_path / "exp"
    n_trials = 6
    # The server trusts loopback connections and ignores the password, which is here to be
    # looked for where it must not be: in the workers' and runners' argv.
    secret = "Secret-pw-5693"
    url = postgres.url.replace("postgresql://postgres@", f"postgresql://postgres:{secret}@", 1)
    assert secret in url
    argv = cli_argv(
        data_root,
        proxy_cache,
        experiment,
        "--storage",
        url,
        "--workers",
        "3",
        "--n-trials",
        str(n_trials),
        "--epochs",
        "2",
        "--pruner",
        "median",
        "--pruner-startup-trials",
        "2",
        "--spot-check-fraction",
        "0",
        "--heartbeat-interval",
        "1",
        "--heartbeat-grace",
        "4",
        "--no-report",
    )
    coordinator = subprocess.Popen(
        argv, env=python_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        storage = postgres.psycopg2_url
        killed_trial, worker_pid, runner_pid = _running_trial_to_kill(storage, coordinator)
        for pid in (worker_pid, runner_pid):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            assert cmdline and secret.encode() not in cmdline, cmdline
        os.kill(worker_pid, signal.SIGKILL)
        # The killed worker's runner goes with it (parent-death signal), not at its next write.
        assert wait_gone(runner_pid, timeout=5), f"runner {runner_pid} outlived its worker"
        out, err = coordinator.communicate(timeout=600)
    finally:
        if coordinator.poll() is None:
            coordinator.kill()
            coordinator.communicate()
    assert coordinator.returncode == 0, err
    assert f"killed by signal {signal.SIGKILL}" in err

    study = optuna.load_study(study_name="it", storage=storage)
    trials = study.get_trials()
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    # The killed worker's trial ended FAIL through its heartbeat, and was retried.
    assert trials[killed_trial].state == TrialState.FAIL
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed_trial]
    assert len(retries) == 1 and retries[0].state in FINISHED
    assert retries[0].params == trials[killed_trial].params
    # Every other trial finished once; a race between workers may add at most one per worker.
    others = [t for t in trials if t.number != killed_trial]
    assert all(t.state in FINISHED for t in others), [(t.number, t.state) for t in others]
    assert n_trials <= len(others) <= n_trials + 2
    # All three workers took part, and no runner survives.
    assert len({t.user_attrs["worker"] for t in trials}) == 3
    for t in trials:
        if "runner_pid" in t.user_attrs:
            assert not alive(t.user_attrs["runner_pid"]), t.number
    # One complete result record per trained complete trial (a repeated configuration reuses
    # its twin's result and trains nothing): nothing lost, nothing twice.
    complete_ids = sorted(
        str(t.number)
        for t in trials
        if t.state == TrialState.COMPLETE and "duplicate_of" not in t.user_attrs
    )
    recorded = sorted(r["trial_id"] for r in records(experiment) if r["status"] == "complete")
    assert recorded == complete_ids
    # Statuses are not enough: each trial's parameters and accuracy are its runner's.
    assert_trials_match_records(trials, experiment)
    assert secret not in out + err
