"""The Optuna objective against a fake trial runner: argv, reporting, pruning, failures, and
no runner outliving its worker."""

from __future__ import annotations

import os
import signal
import subprocess
import textwrap

import optuna
import pytest
from dataproxy.optuna import (
    DataProxyObjective,
    RunnerFailed,
    RunnerOptions,
    SpotCheckPolicy,
    runner_argv,
)
from dataproxy.space import load_space
from optuna.trial import TrialState
from optuna_support import (
    FAKE_TRIAL,
    PYTHON,
    alive,
    python_env,
    wait_for_file_lines,
    wait_gone,
    write_space,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)


def make_objective(tmp_path, *, env=None, epochs=2, stop_timeout=30.0, spot=None):
    space_file = write_space(tmp_path)
    options = RunnerOptions(
        binary=FAKE_TRIAL,
        manifest=str(tmp_path / "manifest.json"),
        space_file=str(space_file),
        data_root=str(tmp_path),
        results_dir=str(tmp_path / "exp"),
        epochs=epochs,
        stop_timeout=stop_timeout,
        env=env or {},
        serve=False,  # fake_trial.py is one process per trial
    )
    return DataProxyObjective(
        load_space(space_file), options, spot_check=spot, manifest_key="abc123"
    )


def test_argv_lists_every_option():
    options = RunnerOptions(
        binary="/bin/runner",
        manifest="/m/manifest.json",
        space_file="/s.yaml",
        data_root="/data",
        results_dir="/exp",
        epochs=3,
        proxy_epochs=2,
        proxy_steps=25,
        device="cpu",
        threads=2,
        seed=9,
        eval_subset=0,
        extra_args=("--x", "1"),
    )
    argv = runner_argv(options, {"K": 3, "B": 16}, trial_id="7", spot_check=True)
    assert argv[0] == "/bin/runner"
    pairs = dict(zip(argv[1::2], argv[2::2]))
    assert pairs["--manifest"] == "/m/manifest.json"
    assert pairs["--params"] == '{"B": 16, "K": 3}'
    assert pairs["--trial-id"] == "7"
    assert pairs["--framework"] == "optuna"
    assert pairs["--results"] == "/exp"
    assert pairs["--report"] == "jsonl"
    assert "--spot-check" in argv
    assert argv[argv.index("--epochs") + 1] == "3"
    assert argv[argv.index("--proxy-epochs") + 1] == "2"
    assert argv[argv.index("--proxy-steps") + 1] == "25"
    assert argv[argv.index("--threads") + 1] == "2"
    assert argv[argv.index("--seed") + 1] == "9"
    assert argv[argv.index("--eval-subset") + 1] == "0"  # 0 = the whole split: still passed
    assert argv[-2:] == ["--x", "1"]
    plain = runner_argv(
        RunnerOptions(binary="r", manifest="m", space_file="s", data_root="d"),
        {"B": 2},
        trial_id="0",
        spot_check=False,
    )
    assert "--spot-check" not in plain and "--epochs" not in plain and "--results" not in plain
    assert "--proxy-epochs" not in plain and "--proxy-steps" not in plain
    assert "--eval-subset" not in plain


def test_complete_trials_report_every_epoch_and_store_attrs(tmp_path):
    objective = make_objective(tmp_path, spot=SpotCheckPolicy(every=2))
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial({"B": 4, "K": 3})
    study.enqueue_trial({"B": 8, "K": 3})
    study.optimize(objective, n_trials=2)
    t0, t1 = study.trials
    assert t0.state == TrialState.COMPLETE and t1.state == TrialState.COMPLETE
    assert sorted(t0.intermediate_values) == [1, 2]
    assert t0.value == pytest.approx(t0.intermediate_values[2])
    assert t0.user_attrs["proxy_accuracy"] == pytest.approx(t0.value)
    assert t0.user_attrs["spot_check"] is True
    assert t0.user_attrs["full_accuracy"] == pytest.approx(t0.value + 0.05)
    assert len(t0.user_attrs["full_curve"]) == 2
    assert t1.user_attrs["spot_check"] is False
    assert t1.user_attrs["full_accuracy"] is None
    assert t0.user_attrs["manifest_key"] == "abc123"
    assert t0.user_attrs["runner_exit_code"] == 0
    assert (tmp_path / "exp" / "results.jsonl").read_text().count("\n") == 2


def _pruning_study():
    study = optuna.create_study(
        direction="maximize",
        pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0),
    )
    study.enqueue_trial({"B": 8, "K": 5})
    study.enqueue_trial({"B": 2, "K": 3})
    return study


def test_pruned_trial_stops_its_runner_cleanly(tmp_path):
    pidfile = tmp_path / "pids"
    env = {"FAKE_EPOCH_SECONDS": "0.3", "FAKE_PIDFILE": str(pidfile)}
    objective = make_objective(tmp_path, env=env, epochs=3)
    study = _pruning_study()
    study.optimize(objective, n_trials=2)
    good, bad = study.trials
    assert good.state == TrialState.COMPLETE
    assert bad.state == TrialState.PRUNED
    assert list(bad.intermediate_values) == [1]
    assert bad.user_attrs["pruned_at_epoch"] == 1
    # 0: the runner took SIGUSR1 (prune), stopped at its next boundary (not killed).
    assert bad.user_attrs["runner_exit_code"] == 0
    pids = [int(x) for x in pidfile.read_text().split()]
    assert len(pids) == 2
    assert not any(alive(p) for p in pids)


def test_pruned_runner_that_ignores_sigint_is_killed(tmp_path):
    pidfile = tmp_path / "pids"
    env = {"FAKE_EPOCH_SECONDS": "0.3", "FAKE_PIDFILE": str(pidfile), "FAKE_IGNORE_SIGINT": "1"}
    objective = make_objective(tmp_path, env=env, epochs=3, stop_timeout=0.5)
    study = _pruning_study()
    study.optimize(objective, n_trials=2)
    bad = study.trials[1]
    assert bad.state == TrialState.PRUNED
    assert bad.user_attrs["runner_exit_code"] == -signal.SIGKILL
    assert not any(alive(int(p)) for p in pidfile.read_text().split())


def test_crashing_runner_fails_the_trial_and_leaves_the_study_usable(tmp_path):
    objective = make_objective(tmp_path, env={"FAKE_CRASH": "1"})
    study = optuna.create_study(direction="maximize")
    study.optimize(objective, n_trials=1, catch=(RunnerFailed,))
    failed = study.trials[0]
    assert failed.state == TrialState.FAIL
    assert "simulated failure" in failed.user_attrs["runner_stderr_tail"]
    assert "exited with code 1 (runtime error)" in failed.user_attrs["runner_error"]
    assert objective.last_failure is not None and not objective.last_failure.fatal

    objective.options.env = {}
    study.optimize(objective, n_trials=1, catch=(RunnerFailed,))
    assert study.trials[1].state == TrialState.COMPLETE
    assert study.best_trial.number == 1


def test_bad_input_exit_is_fatal(tmp_path):
    objective = make_objective(tmp_path, env={"FAKE_CRASH": "2"})
    study = optuna.create_study(direction="maximize")
    with pytest.raises(RunnerFailed, match=r"exited with code 2 \(bad input\)") as info:
        study.optimize(objective, n_trials=1)
    assert info.value.fatal
    assert study.trials[0].state == TrialState.FAIL


WORKER = """
import optuna, sys
from dataproxy.optuna import DataProxyObjective, RunnerOptions
from dataproxy.space import load_space
space_file, runner, folder = sys.argv[1:4]
options = RunnerOptions(binary=runner, manifest="m", space_file=space_file, data_root=folder,
                        epochs=50)
study = optuna.create_study(direction="maximize")
study.optimize(DataProxyObjective(load_space(space_file), options), n_trials=1)
"""


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_runner_does_not_outlive_a_killed_worker(tmp_path, sig):
    pidfile = tmp_path / "pids"
    env = python_env()
    env.update({"FAKE_EPOCH_SECONDS": "1", "FAKE_PIDFILE": str(pidfile)})
    space_file = write_space(tmp_path)
    worker = subprocess.Popen(
        [PYTHON, "-c", textwrap.dedent(WORKER), str(space_file), FAKE_TRIAL, str(tmp_path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        runner_pid = int(wait_for_file_lines(pidfile, 1)[0])
        assert alive(runner_pid)
        # The runner lives in its own session: killing the worker's group would not reach it.
        assert os.getsid(runner_pid) == runner_pid
        worker.send_signal(sig)
        worker.wait(timeout=30)
        assert wait_gone(runner_pid, timeout=10), f"runner {runner_pid} outlived its worker"
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def test_a_repeated_configuration_reuses_the_earlier_result(tmp_path):
    pidfile = tmp_path / "pids"
    objective = make_objective(tmp_path, env={"FAKE_PIDFILE": str(pidfile)})
    study = optuna.create_study(direction="maximize")
    for _ in range(2):
        study.enqueue_trial({"B": 4, "K": 3})
    study.optimize(objective, n_trials=2)
    first, second = study.trials
    assert second.state == TrialState.COMPLETE
    assert second.value == first.value
    assert second.user_attrs["duplicate_of"] == 0
    assert second.user_attrs["proxy_accuracy"] == first.user_attrs["proxy_accuracy"]
    assert "runner_pid" not in second.user_attrs
    assert len(pidfile.read_text().split()) == 1

    objective.reuse_duplicates = False
    study.enqueue_trial({"B": 4, "K": 3})
    study.optimize(objective, n_trials=1)
    assert "duplicate_of" not in study.trials[2].user_attrs
    assert len(pidfile.read_text().split()) == 2


def test_a_spot_check_is_not_answered_by_a_twin_without_full_accuracy(tmp_path):
    objective = make_objective(tmp_path, spot=SpotCheckPolicy(every=2))  # trials 0 and 2
    study = optuna.create_study(direction="maximize")
    for params in ({"B": 4, "K": 3}, {"B": 8, "K": 5}, {"B": 8, "K": 5}):
        study.enqueue_trial(params)
    study.optimize(objective, n_trials=3)
    # Trial 2 is a spot check; its twin (trial 1) has no full accuracy, so it trains.
    assert "duplicate_of" not in study.trials[2].user_attrs
    assert study.trials[2].user_attrs["full_accuracy"] is not None


def test_a_spot_check_is_never_pruned_and_a_pruned_twin_prunes_at_once(tmp_path):
    pidfile = tmp_path / "pids"
    objective = make_objective(
        tmp_path, env={"FAKE_PIDFILE": str(pidfile)}, spot=SpotCheckPolicy(first=1)
    )
    study = optuna.create_study(direction="maximize", pruner=_PruneAtFirstReport())
    for params in ({"B": 4, "K": 3}, {"B": 8, "K": 5}, {"B": 8, "K": 5}):
        study.enqueue_trial(params)
    study.optimize(objective, n_trials=3)
    spot, pruned, twin = study.trials
    assert spot.state == TrialState.COMPLETE and spot.user_attrs["spot_check"] is True
    assert pruned.state == TrialState.PRUNED
    assert twin.state == TrialState.PRUNED and twin.user_attrs["duplicate_of"] == 1
    assert twin.intermediate_values == pruned.intermediate_values
    assert len(pidfile.read_text().split()) == 2


class _PruneAtFirstReport(optuna.pruners.BasePruner):
    def prune(self, study, trial) -> bool:
        return bool(trial.intermediate_values)
