"""The Optuna objective: one trial = one run of the C++ trial runner on the data proxy.

    space = load_space("search_spaces/resnet_tiny.yaml")
    objective = DataProxyObjective(space, RunnerOptions(manifest=..., space_file=..., ...))
    study.optimize(objective, n_trials=12, catch=(RunnerFailed,))

Per trial: the parameters are drawn with trial.suggest_categorical; the runner trains the
candidate on the proxy (and on the full data for spot checks), printing one JSON line per epoch;
each proxy epoch's test accuracy goes to trial.report, and when the pruner says so the runner
is asked to stop (SIGUSR1, which it records as "pruned"), waited for, and the trial ends PRUNED
(spot checks are never pruned: they measure the proxy). A configuration the sampler repeats is
not trained again: the earlier trial's result stands (reuse_duplicates). The returned value is
the proxy accuracy; user_attrs hold proxy_accuracy, full_accuracy, spot_check, manifest_key and
the running rank correlation. A runner that fails raises RunnerFailed after storing its exit
code and stderr tail in user_attrs (so `catch=(RunnerFailed,)` records FAIL and goes on).

By default (RunnerOptions.serve) each worker thread keeps one `dataproxy-trial --serve`, which
trains its trials one after another with the data in memory; pruning then stops the current
candidate only. The same seeds give the same accuracies as one process per trial.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna

from dataproxy.errors import RuntimeFailure
from dataproxy.space import SearchSpace
from dataproxy.spot_check import NoSpotCheck, SpotCheck

from ._process import ChildProcess
from ._server import ServerGone, TrialServer

__all__ = ["DataProxyObjective", "RunnerFailed", "RunnerOptions", "runner_argv", "server_argv"]

#: Attributes about how a trial ran, not what it found: not copied to a duplicate.
_OWN_ATTRS = {"worker", "runner_pid", "runner_exit_code", "duplicate_of"}

#: Runner exit codes that no retry will fix (bad input, data error).
_FATAL_EXIT_CODES = {2: "bad input", 3: "data error"}


class RunnerFailed(RuntimeFailure):
    """The trial runner exited with an error or without a final result; `exit_code` is the
    runner's (negative: killed by that signal; None: no exit seen)."""

    def __init__(self, message: str, *, exit_code: int | None, stderr_tail: str = "") -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[assignment]
        self.stderr_tail = stderr_tail

    @property
    def fatal(self) -> bool:
        """True when every other trial would fail the same way (bad input or data)."""
        return self.exit_code in _FATAL_EXIT_CODES


@dataclass
class RunnerOptions:
    """How to start the trial runner; each field maps to one of its options."""

    #: Path of the `dataproxy-trial` program.
    binary: str
    #: The proxy manifest (manifest.json) from `dataproxy generate`.
    manifest: str
    #: The search-space YAML file.
    space_file: str
    #: Folder holding the datasets.
    data_root: str
    #: Experiment folder: the runner appends its result record to <results>/results.jsonl.
    results_dir: str | None = None
    #: Training epochs (None = the space's training.epochs).
    epochs: int | None = None
    #: Epochs of the proxy phase only (None = `epochs`); spot checks train `epochs`.
    proxy_epochs: int | None = None
    #: Optimizer steps of the proxy phase instead of whole epochs (a calibrated length such as
    #: the full data for 5% of the steps; None = by epochs).
    proxy_steps: int | None = None
    #: "auto", "cpu" or "cuda".
    device: str = "auto"
    #: CPU threads for training (None = the runner's default).
    threads: int | None = None
    #: Training seed (None = the runner's default).
    seed: int | None = None
    #: Test samples evaluated after each epoch but the last (None = the runner's default; 0 =
    #: the whole split every epoch).
    eval_subset: int | None = None
    #: Seconds to wait for a runner asked to stop before killing it.
    stop_timeout: float = 60.0
    #: Extra arguments appended to every runner command line.
    extra_args: Sequence[str] = field(default_factory=tuple)
    #: Extra environment variables for the runner.
    env: dict[str, str] = field(default_factory=dict)
    #: Copy the runner's stderr to ours as it comes (else only its tail on failure).
    echo_stderr: bool = False
    #: One long-lived `dataproxy-trial --serve` per worker thread trains candidate after
    #: candidate with the data kept in memory (same seeds, same accuracies); False starts one
    #: process per trial. Default: on, unless the environment sets DATAPROXY_TRIAL_SERVE=0.
    serve: bool = field(default_factory=lambda: os.environ.get("DATAPROXY_TRIAL_SERVE") != "0")


def _common_flags(options: RunnerOptions) -> list[str]:
    """The flags a trial process and a trial server share (extra_args not included: they
    come last, after the caller's own)."""
    argv = [
        "--manifest",
        options.manifest,
        "--space",
        options.space_file,
        "--data-root",
        options.data_root,
        "--framework",
        "optuna",
        "--device",
        options.device,
        "--report",
        "jsonl",
    ]
    if options.results_dir:
        argv += ["--results", options.results_dir]
    if options.epochs is not None:
        argv += ["--epochs", str(options.epochs)]
    if options.proxy_epochs is not None:
        argv += ["--proxy-epochs", str(options.proxy_epochs)]
    if options.proxy_steps is not None:
        argv += ["--proxy-steps", str(options.proxy_steps)]
    if options.threads is not None:
        argv += ["--threads", str(options.threads)]
    if options.seed is not None:
        argv += ["--seed", str(options.seed)]
    if options.eval_subset is not None:
        argv += ["--eval-subset", str(options.eval_subset)]
    return argv


def runner_argv(
    options: RunnerOptions, params: dict[str, Any], *, trial_id: str, spot_check: bool
) -> list[str]:
    """The runner's command line for one trial."""
    argv = [options.binary, "--params", json.dumps(params, sort_keys=True), "--trial-id", trial_id]
    argv += _common_flags(options) + (["--spot-check"] if spot_check else [])
    return argv + [str(a) for a in options.extra_args]


def server_argv(options: RunnerOptions) -> list[str]:
    """The command line of a `dataproxy-trial --serve` for `options` (the per-trial settings
    come with each request: serve_request)."""
    argv = [options.binary, "--serve"] + _common_flags(options)
    return argv + [str(a) for a in options.extra_args]


def serve_request(params: dict[str, Any], *, trial_id: str, spot_check: bool) -> str:
    """One request line for a server started with server_argv."""
    return json.dumps(
        {"params": params, "trial_id": trial_id, "spot_check": spot_check}, sort_keys=True
    )


class DataProxyObjective:
    """Callable objective for study.optimize; maximise the returned proxy accuracy."""

    def __init__(
        self,
        space: SearchSpace,
        options: RunnerOptions,
        *,
        spot_check: SpotCheck | None = None,
        manifest_key: str | None = None,
        reuse_duplicates: bool = True,
    ) -> None:
        self.space = space
        self.options = options
        self.spot_check: SpotCheck = spot_check or NoSpotCheck()
        self.manifest_key = manifest_key
        #: A configuration that already completed is not trained again (samplers repeat
        #: themselves in small categorical spaces): its value and attributes are copied.
        self.reuse_duplicates = reuse_duplicates
        #: The last RunnerFailed raised, for callers that stop on fatal errors.
        self.last_failure: RunnerFailed | None = None
        # One server per thread: study.optimize(n_jobs=N) calls the objective from N threads.
        self._servers = threading.local()

    def close(self) -> None:
        """Ends this thread's trial server, if any (servers also end with their thread)."""
        server = getattr(self._servers, "server", None)
        if server is not None:
            server.close()
            self._servers.server = None

    def _server(self) -> TrialServer:
        server = getattr(self._servers, "server", None)
        if server is None:
            env = {**os.environ, **self.options.env} if self.options.env else None
            server = TrialServer(
                server_argv(self.options), env=env, echo_stderr=self.options.echo_stderr
            )
            self._servers.server = server
        return server

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        return {
            p.name: trial.suggest_categorical(p.name, list(p.choices))
            for p in self.space.parameters
        }

    def __call__(self, trial: optuna.Trial) -> float:
        params = self.suggest(trial)
        spot = bool(self.spot_check.choose(trial.number, params))
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        if self.reuse_duplicates:
            previous = self._twin(trial, params, spot)
            if previous is not None:
                for key, value in previous.user_attrs.items():
                    if key not in _OWN_ATTRS:
                        trial.set_user_attr(key, value)
                trial.set_user_attr("duplicate_of", previous.number)
                if previous.state == optuna.trial.TrialState.PRUNED:
                    # Same parameters, same seed: the same curve, so the same verdict.
                    for step, value in sorted(previous.intermediate_values.items()):
                        trial.report(value, step)
                    raise optuna.TrialPruned(
                        f"same configuration as pruned trial {previous.number}"
                    )
                return float(previous.value)
        trial.set_user_attr("spot_check", spot)
        if self.manifest_key:
            trial.set_user_attr("manifest_key", self.manifest_key)
        if self.options.serve:
            code, final, full_curve, tail = self._run_served(trial, params, spot)
        else:
            code, final, full_curve, tail = self._run_process(trial, params, spot)
        trial.set_user_attr("runner_exit_code", code)
        if code != 0 or final is None or final.get("status", "complete") != "complete":
            self.last_failure = self._failure(trial, code, final, tail)
            raise self.last_failure
        proxy = final.get("proxy_accuracy")
        if not isinstance(proxy, (int, float)):
            self.last_failure = self._failure(trial, code, final, tail)
            raise self.last_failure
        trial.set_user_attr("proxy_accuracy", float(proxy))
        full = final.get("full_accuracy")
        trial.set_user_attr(
            "full_accuracy", float(full) if isinstance(full, (int, float)) else None
        )
        trial.set_user_attr("spot_check", bool(final.get("spot_check", spot)))
        if full_curve:
            trial.set_user_attr("full_curve", full_curve)
        for key in ("spearman", "kendall", "n_spot_checks", "config_id", "macs", "params"):
            if key in final and final[key] is not None:
                trial.set_user_attr(key, final[key])
        if final.get("manifest_key"):
            trial.set_user_attr("manifest_key", final["manifest_key"])
        return float(proxy)

    def _run_process(
        self, trial: optuna.Trial, params: dict[str, Any], spot: bool
    ) -> tuple[int, dict[str, Any] | None, list[float], str]:
        """One `dataproxy-trial` process for this trial."""
        argv = runner_argv(self.options, params, trial_id=str(trial.number), spot_check=spot)
        env = None
        if self.options.env:
            env = {**os.environ, **self.options.env}
        with ChildProcess(argv, env=env, echo_stderr=self.options.echo_stderr) as child:
            trial.set_user_attr("runner_pid", child.pid)

            def prune() -> int:
                return child.stop(self.options.stop_timeout, signal.SIGUSR1)

            final, full_curve = _follow(trial, child.events(), spot, prune)
            code = child.wait()
            tail = child.stderr_tail()
            stdout_tail = child.stdout_tail()
        return code, final, full_curve, tail or stdout_tail

    def _run_served(
        self, trial: optuna.Trial, params: dict[str, Any], spot: bool
    ) -> tuple[int, dict[str, Any] | None, list[float], str]:
        """This trial as one request to the thread's trial server."""
        server = self._server()
        request = serve_request(params, trial_id=str(trial.number), spot_check=spot)
        events = server.request(request)

        def prune() -> int:
            server.prune()
            try:
                for event in _with_timeout(events, self.options.stop_timeout):
                    if event.get("event") in ("pruned", "interrupted", "final", "error"):
                        return 0
            except (TimeoutError, ServerGone):
                server.stop(0)
            return 0

        try:
            trial.set_user_attr("runner_pid", server.start())
            final, full_curve = _follow(trial, events, spot, prune)
        except ServerGone as gone:
            return gone.exit_code if gone.exit_code is not None else 1, None, [], gone.stderr_tail
        if final is None:
            return 1, None, full_curve, ""
        if final.get("event") == "error":
            code = int(final.get("exit_code", 1))
            return code, None, full_curve, str(final.get("message", ""))
        if final.get("event") == "interrupted":
            return 130, final, full_curve, ""
        return 0, final, full_curve, ""

    @staticmethod
    def _twin(
        trial: optuna.Trial, params: dict[str, Any], spot: bool
    ) -> optuna.trial.FrozenTrial | None:
        """An earlier trial with the same parameters whose result stands for this one: a
        complete one (with a full accuracy when this trial is a spot check), else, unless this
        is a spot check, a pruned one."""
        states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        pruned = None
        for t in trial.study.get_trials(deepcopy=False, states=states):
            if t.params != params:
                continue
            if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None:
                if not spot or t.user_attrs.get("full_accuracy") is not None:
                    return t
            elif t.state == optuna.trial.TrialState.PRUNED and pruned is None:
                pruned = t
        return None if spot else pruned

    def _failure(
        self, trial: optuna.Trial, code: int, final: dict[str, Any] | None, tail: str
    ) -> RunnerFailed:
        if code < 0:
            what = f"was killed by signal {-code} ({_signal_name(-code)})"
        elif code != 0:
            reason = _FATAL_EXIT_CODES.get(code, "runtime error")
            what = f"exited with code {code} ({reason})"
        elif final is None:
            what = "exited without a final result line"
        else:
            what = f"reported status {final.get('status')!r} without a proxy accuracy"
        last = tail.strip().splitlines()[-1] if tail.strip() else "(no output on stderr)"
        trial.set_user_attr("runner_stderr_tail", tail[-4000:])
        message = f"trial runner {what}: {last}"
        trial.set_user_attr("runner_error", message)
        return RunnerFailed(message, exit_code=code, stderr_tail=tail)


def _follow(
    trial: optuna.Trial,
    events: Iterator[dict[str, Any]],
    spot: bool,
    prune: Callable[[], int],
) -> tuple[dict[str, Any] | None, list[float]]:
    """Reads one trial's events: proxy epochs to trial.report (pruning when the pruner says
    so: raises TrialPruned after `prune()`), full-data epochs to a curve. Returns the terminal
    event ("final"; in serve mode also "error" or "interrupted") and the full-data curve."""
    final: dict[str, Any] | None = None
    full_curve: list[float] = []
    proxy_epochs = 0
    for event in events:
        kind = event.get("event")
        if kind == "epoch":
            accuracy = event.get("test_accuracy")
            if not isinstance(accuracy, (int, float)):
                continue
            if event.get("phase", "proxy") == "full":
                full_curve.append(float(accuracy))
                continue
            proxy_epochs += 1
            step = int(event.get("epoch", proxy_epochs))
            trial.report(float(accuracy), step)
            # A spot check is a measurement of the proxy itself: it runs to the end.
            if not spot and trial.should_prune():
                code = prune()
                trial.set_user_attr("runner_exit_code", code)
                trial.set_user_attr("pruned_at_epoch", step)
                raise optuna.TrialPruned(f"pruned at epoch {step} (accuracy {accuracy:.4f})")
        elif kind in ("final", "error", "interrupted"):
            final = event
    return final, full_curve


def _with_timeout(events: Iterator[dict[str, Any]], timeout: float) -> Iterator[dict[str, Any]]:
    """`events` until `timeout` seconds have passed in all (checked between events)."""
    deadline = time.monotonic() + timeout
    for event in events:
        yield event
        if time.monotonic() > deadline:
            raise TimeoutError(f"no end of the pruned candidate after {timeout} s")


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return "unknown"
