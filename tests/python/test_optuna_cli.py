"""`dataproxy-optuna` end to end with fake programs: SQLite default, workers, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from dataproxy.optuna.study import threads_per_worker
from optuna.trial import TrialState
from optuna_support import FAKE_DATAPROXY, FAKE_TRIAL, PYTHON, python_env, write_space

optuna.logging.set_verbosity(optuna.logging.WARNING)


def cli_argv(tmp_path: Path, *extra: str, space: Path | None = None) -> list[str]:
    (tmp_path / "data").mkdir(exist_ok=True)
    space = space or write_space(tmp_path)
    return [
        PYTHON,
        "-m",
        "dataproxy.optuna",
        "--space",
        str(space),
        "--dataset",
        "fake",
        "--data-root",
        str(tmp_path / "data"),
        "--experiment",
        str(tmp_path / "exp"),
        "--study-name",
        "s",
        "--epochs",
        "2",
        "--dataproxy-bin",
        FAKE_DATAPROXY,
        "--trial-bin",
        FAKE_TRIAL,
        "--heartbeat-interval",
        "1",
        *extra,
    ]


def run_cli(tmp_path: Path, *extra: str, env: dict | None = None, space: Path | None = None):
    full_env = python_env()
    full_env.update(env or {})
    return subprocess.run(
        cli_argv(tmp_path, *extra, space=space),
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def load(tmp_path: Path) -> optuna.Study:
    return optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'exp' / 'study.db'}")


def test_default_run_uses_sqlite_in_the_experiment_and_writes_the_report(tmp_path):
    result = run_cli(tmp_path, "--n-trials", "5", "--spot-check-every", "2", "--sampler", "grid")
    assert result.returncode == 0, result.stderr
    report = tmp_path / "exp" / "report" / "report.html"
    assert result.stdout.strip().splitlines()[-1] == f"Report: {report}"
    assert report.exists()
    study = load(tmp_path)
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == len(study.trials) == 5
    assert study.trials[0].user_attrs["spot_check"] is True
    assert study.trials[1].user_attrs["spot_check"] is False
    complete = [t for t in finished if t.state == TrialState.COMPLETE]
    lines = (tmp_path / "exp" / "results.jsonl").read_text().splitlines()
    # Every complete trial left its record (a pruned one may too: it can finish before SIGUSR1).
    assert {str(t.number) for t in complete} <= {json.loads(x)["trial_id"] for x in lines}
    assert "5 trials" in result.stderr


def test_rerun_reuses_the_proxy_and_continues_the_study(tmp_path):
    assert run_cli(tmp_path, "--n-trials", "2").returncode == 0
    second = run_cli(tmp_path, "--n-trials", "3")
    assert second.returncode == 0, second.stderr
    assert "cache hit" in second.stderr
    assert len(load(tmp_path).trials) == 3


def test_local_workers_share_one_sqlite_study(tmp_path):
    argv_file = tmp_path / "argv.jsonl"
    result = run_cli(
        tmp_path,
        "--n-trials",
        "6",
        "--workers",
        "2",
        "--pruner",
        "none",
        env={"FAKE_EPOCH_SECONDS": "0.2", "FAKE_ARGVFILE": str(argv_file)},
    )
    assert result.returncode == 0, result.stderr
    assert "started 2 workers" in result.stderr
    study = load(tmp_path)
    states = [t.state for t in study.trials]
    assert all(s == TrialState.COMPLETE for s in states)
    # A race between two workers starting their last trial at once may add one.
    assert 6 <= len(states) <= 7
    assert len({t.number for t in study.trials}) == len(states)
    # Both workers ran trials.
    assert len({t.user_attrs["worker"] for t in study.trials}) == 2
    # With no --threads, the two workers' runners split the cores instead of each taking all.
    share = str(max(1, len(os.sched_getaffinity(0)) // 2))
    runs = [json.loads(x) for x in argv_file.read_text().splitlines()]
    assert len(runs) == len(states)
    assert all(r[r.index("--threads") + 1] == share for r in runs)


def _cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_a_running_workers_argv_holds_no_storage_url(tmp_path):
    # The storage URL stands for a PostgreSQL one with a password: the secret is in its path.
    secret = "pw-Secret-5693"
    storage = f"sqlite:///{tmp_path / secret / 'study.db'}"
    pidfile = tmp_path / "runner-pids"
    env = python_env()
    env.update(FAKE_EPOCH_SECONDS="1", FAKE_PIDFILE=str(pidfile))
    argv = cli_argv(
        tmp_path, "--n-trials", "2", "--workers", "2", "--pruner", "none", "--storage", storage
    )
    coordinator = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    seen: dict[int, list[str]] = {}
    try:
        deadline = time.monotonic() + 120
        while not seen and time.monotonic() < deadline:
            assert coordinator.poll() is None, coordinator.communicate()
            pids = pidfile.read_text().split() if pidfile.exists() else []
            for runner in map(int, pids):
                try:
                    worker = _parent(runner)
                    assert _parent(worker) == coordinator.pid
                    seen[worker] = _cmdline(worker)
                    seen[runner] = _cmdline(runner)
                except FileNotFoundError:
                    continue  # that runner already ended
            time.sleep(0.05)
        out, err = coordinator.communicate(timeout=300)
    finally:
        if coordinator.poll() is None:
            coordinator.kill()
            coordinator.communicate()
    assert coordinator.returncode == 0, err
    assert seen, "no running worker was seen"
    workers = [argv for argv in seen.values() if "dataproxy.optuna._worker" in argv]
    assert workers, seen
    for cmdline in seen.values():
        assert not any(secret in arg for arg in cmdline), cmdline
    # The study the workers ran is the one at that URL: they did get it, through stdin.
    study = optuna.load_study(study_name="s", storage=storage)
    assert [t.state for t in study.trials].count(TrialState.COMPLETE) >= 2


def test_threads_per_worker_splits_the_cores_unless_given():
    assert threads_per_worker(0, 1, cores=16) == 16
    assert threads_per_worker(0, 3, cores=16) == 5
    assert threads_per_worker(0, 4, cores=2) == 1
    assert threads_per_worker(6, 4, cores=2) == 6


def test_crashing_runner_fails_trials_without_traceback(tmp_path):
    result = run_cli(tmp_path, "--n-trials", "4", "--max-failures", "2", env={"FAKE_CRASH": "1"})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "2 trials failed in this worker" in result.stderr
    assert "simulated failure" in result.stderr
    study = load(tmp_path)
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.FAIL]
    assert "simulated failure" in study.trials[0].user_attrs["runner_stderr_tail"]


def test_runner_refusing_its_input_stops_at_once(tmp_path):
    result = run_cli(tmp_path, "--n-trials", "4", env={"FAKE_CRASH": "2"})
    assert result.returncode == 1
    assert "bad input" in result.stderr and "no retry can fix this" in result.stderr
    assert "Traceback" not in result.stderr
    assert [t.state for t in load(tmp_path).trials] == [TrialState.FAIL]


@pytest.mark.parametrize(
    ("storage", "message"),
    [
        ("mysql://x@localhost/db", "not a supported storage URL"),
        ("postgresql://user:secret@127.0.0.1:1/db", "cannot open storage"),
        ("sqlite:////proc/forbidden/study.db", "study.db"),
    ],
)
def test_bad_storage_is_a_clear_error(tmp_path, storage, message):
    result = run_cli(tmp_path, "--storage", storage)
    assert result.returncode == 2
    assert message in result.stderr
    assert "secret" not in result.stderr
    assert "Traceback" not in result.stderr
    errors = [x for x in result.stderr.splitlines() if not x.startswith("dataproxy-optuna: warn")]
    assert errors[0].startswith("dataproxy-optuna: error:")


def test_a_password_on_the_command_line_is_warned_about(tmp_path):
    result = run_cli(tmp_path, "--storage", "postgresql://user:secret@127.0.0.1:1/db")
    assert result.stderr.startswith("dataproxy-optuna: warning: the password in --storage")
    assert "--storage-file" in result.stderr and "secret" not in result.stderr
    no_password = run_cli(tmp_path, "--storage", "postgresql://user@127.0.0.1:1/db")
    assert "warning" not in no_password.stderr


def test_the_storage_url_can_come_from_a_private_file(tmp_path):
    url = f"sqlite:///{tmp_path / 'from-file.db'}"
    path = tmp_path / "storage-url"
    path.write_text(url + "\n")
    path.chmod(0o600)
    result = run_cli(tmp_path, "--n-trials", "2", "--storage-file", str(path), "--workers", "2")
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr
    study = optuna.load_study(study_name="s", storage=url)
    assert [t.state for t in study.trials].count(TrialState.COMPLETE) >= 2
    assert not (tmp_path / "exp" / "study.db").exists()


def test_a_storage_file_others_may_read_is_refused(tmp_path):
    path = tmp_path / "storage-url"
    path.write_text(f"sqlite:///{tmp_path / 'x.db'}\n")
    path.chmod(0o644)
    result = run_cli(tmp_path, "--storage-file", str(path))
    assert result.returncode == 2
    assert "readable by other users (mode 644)" in result.stderr
    assert f"chmod 600 {path}" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "x.db").exists()


def test_the_storage_url_can_come_from_the_environment(tmp_path):
    url = f"sqlite:///{tmp_path / 'from-env.db'}"
    result = run_cli(tmp_path, "--n-trials", "1", env={"DATAPROXY_OPTUNA_STORAGE": url})
    assert result.returncode == 0, result.stderr
    assert len(optuna.load_study(study_name="s", storage=url).trials) == 1


def assert_every_trial_gets(tmp_path: Path, flag: str, value: str) -> None:
    """Two trials of a study given `flag value` both receive it on their command line."""
    argv_file = tmp_path / "argv.jsonl"
    result = run_cli(
        tmp_path, "--n-trials", "2", flag, value, env={"FAKE_ARGVFILE": str(argv_file)}
    )
    assert result.returncode == 0, result.stderr
    runs = [json.loads(x) for x in argv_file.read_text().splitlines()]
    assert len(runs) == 2
    assert all(r[r.index(flag) + 1] == value for r in runs)


def test_eval_subset_reaches_every_trial(tmp_path):
    assert_every_trial_gets(tmp_path, "--eval-subset", "50")


def test_proxy_steps_reach_every_trial_and_a_negative_count_is_refused(tmp_path):
    assert_every_trial_gets(tmp_path, "--proxy-steps", "25")
    bad = run_cli(tmp_path, "--proxy-steps", "-3")
    assert bad.returncode == 2 and "--proxy-steps -3" in bad.stderr, bad.stderr


def test_generation_failure_is_a_clear_error(tmp_path):
    result = run_cli(tmp_path, "--dataset", "missing")
    assert result.returncode == 2
    assert "proxy generation" in result.stderr and "not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_program_is_a_clear_error(tmp_path):
    result = run_cli(tmp_path, "--trial-bin", str(tmp_path / "nope"))
    assert result.returncode == 2
    assert "is not an executable file" in result.stderr
    assert "Traceback" not in result.stderr
