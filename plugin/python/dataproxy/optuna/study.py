"""Running a study: proxy generation, storage, workers, and the report at the end.

One *worker* is one process with its own storage connection, running trials one after another
until the study holds `n_trials` finished (COMPLETE or PRUNED) trials. Several workers on one
machine (`workers > 1`) or on many (the same command, one shared `postgresql://` storage) share
one study. Heartbeats mark the trial of a worker that died as FAIL, and a retry of it is queued
for the others.

SQLite with a few local workers is supported (a writer waits up to 60 s for the file's lock;
trials write rarely); for many workers, or workers on several machines, use PostgreSQL.
`n_trials` counts the study's finished trials, so a rerun continues a study up to it; with
several workers, two that start their last trials at the same instant can add one extra trial.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from dataproxy.binaries import find_binary
from dataproxy.commands import (
    GenerateOptions,
    ProxyInfo,
    bottom_line,
    calibrate_argv,
    check_method,
    generate_argv,
    manifest_event,
    read_manifest,
    run_calibration,
)
from dataproxy.errors import DataproxyError, InvalidInput
from dataproxy.space import SearchSpace, load_space
from dataproxy.spot_check import SpotCheckPolicy

from ._process import ChildProcess, _child_setup
from .objective import DataProxyObjective, RunnerFailed, RunnerOptions

__all__ = [
    "ProxyInfo",
    "StudyConfig",
    "StudyError",
    "create_study",
    "generate_proxy",
    "open_storage",
    "run_study",
    "run_worker",
]

SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "hyperband", "none")
SELECTION_SPLITS = ("half-test", "paper-test")


#: Environment variable holding the storage URL (so that no password shows in an argv).
STORAGE_ENV = "DATAPROXY_OPTUNA_STORAGE"


class StudyError(DataproxyError):
    """A user-facing failure: the message says what was wrong and what to do.

    `exit_code` 2 means bad input (nothing ran); 1 means the run itself did not finish.
    """

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message, exit_code=exit_code)


@dataclass
class StudyConfig:
    """Everything a study run needs; the CLI options map onto these fields one to one."""

    #: Search-space YAML file.
    space: str
    #: Dataset name for `dataproxy generate` (e.g. "fashion-mnist", "cifar10").
    dataset: str
    #: Folder holding the datasets.
    data_root: str = "data"
    #: Proxy size as a fraction of the training split.
    ratio: float = 0.1
    #: Choose method, ratio and proxy length with `dataproxy calibrate` first (`--ratio auto`).
    calibrate: bool = False
    #: Spearman the calibrated choice's lower bound must reach.
    calibration_target: float = 0.9
    #: Proxy choices to calibrate (METHOD:RATIO[:LENGTH]); empty = calibrate's defaults.
    calibration_choices: list[str] = dataclasses.field(default_factory=list)
    #: Trials the calibration budget is sized for (0 = n_trials).
    calibration_trials: int = 0
    #: Share of that many full-data trials calibration may spend.
    calibration_budget_share: float = 0.1
    #: Epochs of the proxy phase (0 = `epochs`); set by calibration to its chosen length.
    proxy_epochs: int = 0
    #: Optimizer steps of the proxy phase instead of epochs (0 = by epochs); set by calibration
    #: when its chosen length is not a whole number of epochs.
    proxy_steps: int = 0
    #: Proxy selection method, as `dataproxy methods` lists them (e.g. "importance", "random").
    method: str = "importance"
    #: Which test samples choose the proxy: "half-test" (a seeded half; the other half ranks the
    #: candidates) or "paper-test" (the whole test split does both, as in the paper).
    selection_split: str = "half-test"
    #: Use the first N training samples only (0 = all).
    max_train: int = 0
    #: Use the first N test samples only (0 = all).
    max_test: int = 0
    #: Epochs of the probe networks during generation (0 = the generator's default).
    probe_epochs: int = 0
    #: Resize every image to N x N when generating (0 = the data's most common size); the
    #: manifest records the size, so every trial loads the same.
    image_size: int = 0
    #: Proxy cache folder (None = the generator's default).
    cache: str | None = None
    #: Use this manifest instead of generating one.
    manifest: str | None = None
    #: Finished (COMPLETE or PRUNED) trials the study should hold.
    n_trials: int = 12
    #: Training epochs per trial (0 = the space's training.epochs).
    epochs: int = 0
    #: Test samples each trial evaluates after every epoch but the last (the pruner's signal;
    #: the final accuracy uses the whole split); 0 = the whole split; None = the runner's default.
    eval_subset: int | None = None
    #: One long-lived `dataproxy-trial --serve` per worker thread (True), or one process per
    #: trial (False); None = serve unless DATAPROXY_TRIAL_SERVE=0.
    serve: bool | None = None
    #: "tpe", "random" or "grid".
    sampler: str = "tpe"
    #: "median", "hyperband" or "none".
    pruner: str = "median"
    #: Trials before the median pruner starts pruning.
    pruner_startup_trials: int = 3
    #: Probability that a trial is also trained on the full data.
    spot_check_fraction: float = 0.25
    #: Also spot-check every N-th trial (0 = off).
    spot_check_every: int = 0
    #: Also spot-check the first N trials.
    spot_check_first: int = 0
    #: Experiment folder: results.jsonl, study.db (SQLite default), report/.
    experiment: str | None = None
    #: Study name (None = derived from space, dataset, method and ratio).
    study_name: str | None = None
    #: Storage URL (None = sqlite:///<experiment>/study.db).
    storage: str | None = None
    #: A file holding the storage URL (readable by its owner only), instead of `storage`: a
    #: password in a command line is visible to every user of the machine.
    storage_file: str | None = None
    #: Local worker processes.
    workers: int = 1
    #: Seed of the sampler, the generator, the runner and the spot-check policy.
    seed: int = 0
    #: "auto", "cpu" or "cuda".
    device: str = "auto"
    #: CPU threads per trial (0 = the runner's default).
    threads: int = 0
    #: Seconds between a worker's heartbeats (0 = no heartbeats).
    heartbeat_interval: int = 10
    #: Seconds without a heartbeat after which a running trial is failed (0 = 2 intervals).
    heartbeat_grace: int = 0
    #: Failed trials after which a worker gives up.
    max_failures: int = 3
    #: Seconds a runner asked to stop may take before it is killed.
    stop_timeout: float = 60.0
    #: Give a configuration that already completed its earlier result instead of training it
    #: again (samplers repeat themselves in small categorical spaces).
    reuse_duplicates: bool = True
    #: Run `dataproxy report` when the study ends.
    report: bool = True
    #: Path of the `dataproxy` program (None = search).
    dataproxy_bin: str | None = None
    #: Path of the `dataproxy-trial` program (None = search).
    trial_bin: str | None = None
    #: Copy the runners' stderr to ours as it comes.
    verbose: bool = False

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> StudyConfig:
        return cls(**json.loads(text))


# ---------------------------------------------------------------------------------------------
# Checks and set-up


def check_config(config: StudyConfig) -> SearchSpace:
    """Validates the options that need no service; returns the parsed space."""
    find_binary("dataproxy", config.dataproxy_bin)  # BinaryNotFound names where it looked
    try:
        check_method(config.method, config.dataproxy_bin)
    except InvalidInput as e:
        raise StudyError(f"--method: {e}") from None
    if config.selection_split not in SELECTION_SPLITS:
        splits = ", ".join(SELECTION_SPLITS)
        raise StudyError(f"--selection-split {config.selection_split!r}: use one of {splits}")
    if config.sampler not in SAMPLERS:
        raise StudyError(f"--sampler {config.sampler!r}: use one of {', '.join(SAMPLERS)}")
    if config.pruner not in PRUNERS:
        raise StudyError(f"--pruner {config.pruner!r}: use one of {', '.join(PRUNERS)}")
    if not 0.0 < config.ratio <= 1.0:
        raise StudyError(f"--ratio {config.ratio}: must be in (0, 1], e.g. 0.1 for 10%")
    if config.n_trials < 1:
        raise StudyError(f"--n-trials {config.n_trials}: must be at least 1")
    if config.workers < 1:
        raise StudyError(f"--workers {config.workers}: must be at least 1")
    if config.max_failures < 1:
        raise StudyError(f"--max-failures {config.max_failures}: must be at least 1")
    if config.image_size < 0:
        raise StudyError(f"--image-size {config.image_size}: must be >= 0 (0 = the data's size)")
    if config.eval_subset is not None and config.eval_subset < 0:
        raise StudyError(f"--eval-subset {config.eval_subset}: must be >= 0 (0 = whole split)")
    if config.proxy_steps < 0:
        raise StudyError(f"--proxy-steps {config.proxy_steps}: must be >= 0 (0 = whole epochs)")
    if config.storage and config.storage_file:
        raise StudyError("--storage and --storage-file: give one of them")
    try:
        SpotCheckPolicy(
            fraction=config.spot_check_fraction,
            every=config.spot_check_every,
            first=config.spot_check_first,
        )
    except InvalidInput as e:
        raise StudyError(str(e)) from None
    space = load_space(config.space, config.dataproxy_bin)
    data_root = Path(config.data_root)
    # --dataset npz takes the .npz file itself; every other format a folder.
    if not (data_root.is_dir() or (config.dataset == "npz" and data_root.is_file())):
        raise StudyError(
            f"--data-root {config.data_root!r} is not a folder; fetch the data first, e.g. "
            "'dataproxy fetch-data fashion-mnist --data-root data'"
        )
    return space


def resolve_paths(config: StudyConfig, space: SearchSpace) -> StudyConfig:
    """Fills the defaults that depend on other options and makes paths absolute."""
    proxy = "auto" if config.calibrate else f"{config.method}-{config.ratio:g}"
    name = config.study_name or f"{space.name}-{config.dataset}-{proxy}"
    experiment = Path(config.experiment or Path("experiments") / name).resolve()
    storage = config.storage
    if config.storage_file:
        storage = read_storage_file(config.storage_file)
    storage = storage or f"sqlite:///{experiment / 'study.db'}"
    return dataclasses.replace(
        config,
        study_name=name,
        experiment=str(experiment),
        storage=storage,
        space=str(Path(config.space).resolve()),
        data_root=str(Path(config.data_root).resolve()),
        cache=str(Path(config.cache).resolve()) if config.cache else None,
        manifest=str(Path(config.manifest).resolve()) if config.manifest else None,
    )


def read_storage_file(path: str) -> str:
    """The storage URL in `path` (its first non-empty line); refuses a file that users other
    than its owner may read, as the URL may hold a password."""
    p = Path(path)
    try:
        mode = p.stat().st_mode
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StudyError(f"--storage-file {path!r} does not exist") from None
    except OSError as e:
        raise StudyError(f"--storage-file {path!r} cannot be read: {e.strerror}") from None
    if mode & 0o077:
        raise StudyError(
            f"--storage-file {path!r} is readable by other users (mode {mode & 0o777:03o}); "
            f"it may hold a password: run 'chmod 600 {path}'"
        )
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise StudyError(f"--storage-file {path!r} is empty; write the storage URL in it")
    return lines[0]


def url_has_password(url: str) -> bool:
    try:
        from sqlalchemy.engine import make_url

        return bool(make_url(url).password)
    except Exception:
        netloc = url.split("://", 1)[-1].split("/", 1)[0]
        return "@" in netloc and ":" in netloc.rsplit("@", 1)[0]


def _mask_url(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1] if "@" in url else url


def _with_postgres_driver(url: str) -> str:
    """`postgresql://` names no driver, and SQLAlchemy 2.1 then wants psycopg 3; use
    psycopg2 (plugin/python/requirements.txt) when only that one is installed."""
    if not url.startswith("postgresql://"):
        return url
    import importlib.util

    if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2"):
        return "postgresql+psycopg2://" + url[len("postgresql://") :]
    return url


def open_storage(
    url: str, *, heartbeat_interval: int = 0, grace_period: int = 0
) -> optuna.storages.RDBStorage:
    """An RDB storage (SQLite or PostgreSQL) with heartbeats; StudyError if it cannot be used."""
    shown = _mask_url(url)
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:"):
        # Several local workers on one SQLite file wait for the write lock instead of failing.
        engine_kwargs["connect_args"] = {"timeout": 60}
        path = url.split("sqlite:///", 1)[-1]
        if path and path != ":memory:" and url.startswith("sqlite:///"):
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise StudyError(
                    f"--storage {shown!r}: cannot create the folder of {path!r}: {e.strerror}"
                ) from None
    elif url.startswith(("postgresql:", "postgresql+")):
        engine_kwargs["pool_pre_ping"] = True
        url = _with_postgres_driver(url)
    else:
        raise StudyError(
            f"--storage {shown!r}: not a supported storage URL; use "
            "sqlite:///path/to/study.db or postgresql://user:password@host:port/database"
        )
    hb: dict[str, Any] = {}
    if heartbeat_interval > 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2)
        hb = {
            "heartbeat_interval": heartbeat_interval,
            "grace_period": grace_period or 2 * heartbeat_interval,
            "heartbeat_stale_trial_callback": retry,
        }
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **hb)
    except ImportError as e:
        cause = e.__cause__ or e
        raise StudyError(
            f"--storage {shown!r}: the database driver is missing ({cause}); for PostgreSQL "
            "install psycopg2-binary (plugin/python/requirements.txt)"
        ) from None
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise StudyError(f"cannot open storage {shown!r}: {first}") from None


def make_sampler(config: StudyConfig, space: SearchSpace) -> optuna.samplers.BaseSampler:
    if config.sampler == "random":
        return optuna.samplers.RandomSampler(seed=config.seed)
    if config.sampler == "grid":
        return optuna.samplers.GridSampler(space.grid(), seed=config.seed)
    return optuna.samplers.TPESampler(seed=config.seed)


def make_pruner(config: StudyConfig) -> optuna.pruners.BasePruner:
    if config.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=config.pruner_startup_trials)
    if config.pruner == "hyperband":
        max_resource = config.epochs if config.epochs > 0 else "auto"
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_resource)
    return optuna.pruners.NopPruner()


def create_study(
    config: StudyConfig, space: SearchSpace, storage: optuna.storages.BaseStorage
) -> optuna.Study:
    """Creates the study, or loads it when it exists (workers joining a shared study)."""
    try:
        study = optuna.create_study(
            storage=storage,
            study_name=config.study_name,
            sampler=make_sampler(config, space),
            pruner=make_pruner(config),
            direction="maximize",
            load_if_exists=True,
        )
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise StudyError(f"cannot create or load study {config.study_name!r}: {first}") from None
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise StudyError(
            f"study {config.study_name!r} exists in this storage and minimises; use another "
            "--study-name"
        )
    return study


# ---------------------------------------------------------------------------------------------
# Proxy generation


def generate_options(config: StudyConfig, report: str = "jsonl") -> GenerateOptions:
    """The study's proxy, as `dataproxy generate` options."""
    return GenerateOptions(
        space=config.space,
        dataset=config.dataset,
        data_root=config.data_root,
        ratio=config.ratio,
        method=config.method,
        seed=config.seed,
        selection_split=config.selection_split,
        max_train=config.max_train,
        max_test=config.max_test,
        probe_epochs=config.probe_epochs,
        image_size=config.image_size,
        cache=config.cache,
        device=config.device,
        threads=config.threads,
        report=report,
    )


def generate_proxy(config: StudyConfig, dataproxy_bin: str) -> ProxyInfo:
    """Runs `dataproxy generate` (a cache hit when the same proxy was made before)."""
    tty = sys.stderr.isatty()
    argv = generate_argv(dataproxy_bin, generate_options(config, "bar" if tty else "jsonl"))
    events: list[dict[str, Any]] = []
    with ChildProcess(argv, inherit_stderr=tty, echo_stderr=not tty) as child:
        for event in child.events():
            events.append(event)
            if event.get("event") == "message" and event.get("text"):
                print(f"[generate] {event['text']}", file=sys.stderr, flush=True)
        code = child.wait()
        tail = child.stderr_tail(5)
    info = manifest_event(events)
    if code != 0 or info is None:
        detail = f": {tail.strip().splitlines()[-1]}" if tail.strip() else " (see above)"
        what = f"exited with code {code}" if code else "printed no manifest line"
        raise StudyError(
            f"proxy generation ('dataproxy generate') {what}{detail}",
            exit_code=2 if code in (2, 3) else 1,
        )
    return info


def _read_manifest_key(path: str) -> ProxyInfo:
    try:
        return read_manifest(path)
    except InvalidInput as e:
        raise StudyError(f"--manifest: {e}") from None


# ---------------------------------------------------------------------------------------------
# Workers


def _counts(study: optuna.Study) -> dict[TrialState, int]:
    counts = dict.fromkeys(TrialState, 0)
    for t in study.get_trials(deepcopy=False):
        counts[t.state] += 1
    return counts


def _queued_retries(study: optuna.Study) -> int:
    """WAITING trials that retry a failed one (RetryFailedTrialCallback marks them)."""
    return sum(
        1
        for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        if "failed_trial" in t.system_attrs
    )


def run_worker(
    study: optuna.Study,
    objective: DataProxyObjective,
    *,
    n_trials: int,
    max_failures: int = 3,
    poll_interval: float = 2.0,
) -> None:
    """Runs trials until the study holds `n_trials` finished (COMPLETE or PRUNED) ones.

    While the target is covered by finished and running trials, the worker waits: a running
    trial of a dead worker turns FAIL at its heartbeat deadline, and its queued retry is taken
    by whichever worker sees it first. A retry queued after the target was reached (another
    worker's new trial got there first) still runs: no WAITING retry is left behind for a later
    optimize() to run unasked, at the cost of one trial over the target. Raises StudyError
    after `max_failures` runner failures in this worker, or at once on a runner failure that
    no retry can fix (bad input or data).
    """
    failures = 0
    while True:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        counts = _counts(study)
        finished = counts[TrialState.COMPLETE] + counts[TrialState.PRUNED]
        retries = _queued_retries(study) if counts[TrialState.WAITING] else 0
        if finished >= n_trials and not retries:
            return
        if finished + counts[TrialState.RUNNING] >= n_trials and not retries:
            time.sleep(poll_interval)
            continue
        objective.last_failure = None
        study.optimize(objective, n_trials=1, catch=(RunnerFailed,))
        failure = objective.last_failure
        if failure is None:
            continue
        failures += 1
        if failure.fatal:
            raise StudyError(
                f"{failure} (no retry can fix this; the trial is recorded as FAIL)", exit_code=1
            )
        if failures >= max_failures:
            raise StudyError(
                f"{failures} trials failed in this worker; the last: {failure}. "
                "Raise --max-failures to keep going.",
                exit_code=1,
            )


def _build_objective(
    config: StudyConfig, space: SearchSpace, proxy: ProxyInfo
) -> DataProxyObjective:
    trial_bin = find_binary("dataproxy-trial", config.trial_bin)
    options = RunnerOptions(
        binary=trial_bin,
        manifest=proxy.path,
        space_file=config.space,
        data_root=config.data_root,
        results_dir=config.experiment,
        epochs=config.epochs or None,
        proxy_epochs=config.proxy_epochs or None,
        proxy_steps=config.proxy_steps or None,
        device=config.device,
        threads=config.threads or None,
        seed=config.seed,
        eval_subset=config.eval_subset,
        stop_timeout=config.stop_timeout,
        echo_stderr=config.verbose,
        **({} if config.serve is None else {"serve": config.serve}),
    )
    policy = SpotCheckPolicy(
        fraction=config.spot_check_fraction,
        every=config.spot_check_every,
        first=config.spot_check_first,
        seed=config.seed,
    )
    return DataProxyObjective(
        space,
        options,
        spot_check=policy,
        manifest_key=proxy.key,
        reuse_duplicates=config.reuse_duplicates,
    )


def worker_main(config: StudyConfig, proxy: ProxyInfo) -> int:
    """One worker process's body; returns its exit code."""
    space = load_space(config.space, config.dataproxy_bin)
    storage = open_storage(
        config.storage,
        heartbeat_interval=config.heartbeat_interval,
        grace_period=config.heartbeat_grace,
    )
    study = create_study(config, space, storage)
    objective = _build_objective(config, space, proxy)
    run_worker(
        study,
        objective,
        n_trials=config.n_trials,
        max_failures=config.max_failures,
        poll_interval=max(1.0, config.heartbeat_interval / 2),
    )
    return 0


def _terminate_on_sigterm() -> None:
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


def threads_per_worker(threads: int, workers: int, cores: int | None = None) -> int:
    """CPU threads for each trial when `workers` run on one machine: the asked number, else an
    equal share of the cores. Every runner taking all cores oversubscribes them, and LibTorch's
    OpenMP threads then slow down several times over."""
    if threads > 0:
        return threads
    if cores is None:
        cores = len(os.sched_getaffinity(0))
    return max(1, cores // max(1, workers))


def _spawn_workers(config: StudyConfig, proxy: ProxyInfo) -> list[subprocess.Popen]:
    parent = os.getpid()
    worker_config = dataclasses.replace(
        config,
        storage_file=None,  # resolved: `storage` holds the URL
        workers=1,
        report=False,
        threads=threads_per_worker(config.threads, config.workers),
    )
    # The settings, storage URL and its password included, go through the worker's stdin: an
    # argv is readable by every user of the machine (/proc/<pid>/cmdline, ps).
    settings = json.dumps(
        {"config": json.loads(worker_config.to_json()), "proxy": dataclasses.asdict(proxy)}
    )
    argv = [sys.executable, "-m", "dataproxy.optuna._worker"]
    procs = []
    for _ in range(config.workers):
        # Workers share our process group (a terminal's Ctrl-C reaches them all) and get
        # SIGTERM if we die, which makes them stop their runners.
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            text=True,
            preexec_fn=lambda: _child_setup(parent, signal.SIGTERM),
        )
        assert proc.stdin is not None
        try:
            proc.stdin.write(settings)
            proc.stdin.close()
        except BrokenPipeError:
            pass  # the worker died at once; _wait_workers reports its exit code
        procs.append(proc)
    return procs


def _wait_workers(procs: list[subprocess.Popen]) -> list[int]:
    try:
        return [p.wait() for p in procs]
    except KeyboardInterrupt:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=90)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        raise


# ---------------------------------------------------------------------------------------------
# The whole run


def _say(text: str) -> None:
    print(f"[dataproxy-optuna] {text}", file=sys.stderr, flush=True)


def summarize(study: optuna.Study) -> str:
    counts = _counts(study)
    parts = [
        f"{counts[TrialState.COMPLETE]} complete",
        f"{counts[TrialState.PRUNED]} pruned",
        f"{counts[TrialState.FAIL]} failed",
    ]
    text = f"study {study.study_name!r}: {len(study.trials)} trials ({', '.join(parts)})"
    completed = [t for t in study.trials if t.state == TrialState.COMPLETE]
    if completed:
        best = study.best_trial
        text += f"; best: trial {best.number}, proxy accuracy {best.value:.4f}, {best.params}"
        checked = [t for t in completed if t.user_attrs.get("spearman") is not None]
        if checked:
            last = max(checked, key=lambda t: t.number)
            text += (
                f"; proxy-vs-full Spearman {last.user_attrs['spearman']:.3f} "
                f"over {last.user_attrs.get('n_spot_checks', '?')} spot checks"
            )
    return text


def _calibrate(config: StudyConfig, dataproxy_bin: str) -> StudyConfig:
    """`--ratio auto`: measure which proxy keeps the ranking here, then search on it."""
    _say("calibrating: which proxy keeps the ranking on this data and space?")
    extra = ["--target", str(config.calibration_target)]
    extra += ["--budget-share", str(config.calibration_budget_share)]
    for choice in config.calibration_choices:
        extra += ["--choice", choice]
    argv = calibrate_argv(
        dataproxy_bin,
        space=config.space,
        dataset=config.dataset,
        data_root=config.data_root,
        out=str(Path(config.experiment) / "calibration"),
        results=config.experiment,
        expected_trials=config.calibration_trials or config.n_trials,
        seed=config.seed,
        max_train=config.max_train,
        max_test=config.max_test,
        image_size=config.image_size,
        epochs=config.epochs,
        cache=config.cache,
        threads=config.threads,
        device=config.device,
        selection_split=config.selection_split,
        extra=extra,
    )
    try:
        cal = run_calibration(argv)
    except RuntimeError as e:
        raise StudyError(str(e)) from None
    _say(cal.summary)
    if not cal.recommended:
        _say(
            f"no choice met the target {config.calibration_target}; searching on the best one "
            f"found ({cal.method} {cal.ratio:g}, {cal.epochs} epochs): trust its ranking only "
            "as far as the report's spot checks support it"
        )
    return dataclasses.replace(
        config,
        method=cal.method,
        ratio=cal.ratio,
        manifest=cal.manifest,
        proxy_epochs=cal.epochs,
        proxy_steps=cal.steps,
    )


def run_report(config: StudyConfig, dataproxy_bin: str, proxy: ProxyInfo) -> Path:
    out = Path(config.experiment) / "report"
    argv = [
        dataproxy_bin,
        "report",
        "--results",
        config.experiment,
        "--manifest",
        proxy.path,
        "--out",
        str(out),
    ]
    result = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=sys.stderr.fileno())
    if result.returncode != 0:
        raise StudyError(
            f"the study finished, but 'dataproxy report' exited with code {result.returncode}; "
            f"rerun it with: {' '.join(argv)}",
            exit_code=1,
        )
    html = out / "report.html"
    return html if html.exists() else out


def run_study(config: StudyConfig) -> int:
    """The CLI's whole run: checks, proxy, study, workers, report. Returns the exit code."""
    space = check_config(config)
    config = resolve_paths(config, space)
    Path(config.experiment).mkdir(parents=True, exist_ok=True)
    storage = open_storage(
        config.storage,
        heartbeat_interval=config.heartbeat_interval,
        grace_period=config.heartbeat_grace,
    )
    dataproxy_bin = find_binary("dataproxy", config.dataproxy_bin)
    find_binary("dataproxy-trial", config.trial_bin)
    _say(f"experiment folder {config.experiment}")
    if config.calibrate and not config.manifest:
        config = _calibrate(config, dataproxy_bin)
    study = create_study(config, space, storage)
    _say(f"study {config.study_name!r} in {_mask_url(config.storage)}")

    if config.manifest:
        proxy = _read_manifest_key(config.manifest)
    else:
        _say(f"data proxy: {config.method}, ratio {config.ratio:g} of {config.dataset}")
        proxy = generate_proxy(config, dataproxy_bin)
        _say(f"manifest {proxy.path} ({'cache hit' if proxy.cache_hit else 'generated'})")

    status = 0
    if config.workers == 1:
        objective = _build_objective(config, space, proxy)
        run_worker(
            study,
            objective,
            n_trials=config.n_trials,
            max_failures=config.max_failures,
            poll_interval=max(1.0, config.heartbeat_interval / 2),
        )
    else:
        procs = _spawn_workers(config, proxy)
        _say(f"started {len(procs)} workers: pids {' '.join(str(p.pid) for p in procs)}")
        codes = _wait_workers(procs)
        for p, code in zip(procs, codes):
            if code < 0:
                _say(f"worker {p.pid} was killed by signal {-code}")
            elif code != 0:
                _say(f"worker {p.pid} exited with code {code}")
        counts = _counts(study)
        if counts[TrialState.COMPLETE] + counts[TrialState.PRUNED] < config.n_trials:
            status = 1
            _say(
                f"the study holds fewer than {config.n_trials} finished trials: every worker "
                "stopped early (see the messages above)"
            )
    _say(summarize(study))
    if config.report:
        report = run_report(config, dataproxy_bin, proxy)
        for line in bottom_line(Path(config.experiment) / "report" / "report.json"):
            _say(line)
        _say(f"report: {report}")
        print(f"Report: {report}", flush=True)
    return status


def worker_process_main(settings: str) -> int:
    """Entry of a worker started by `--workers N` (its parent-death signal is already set);
    `settings` is what the coordinator wrote to the worker's stdin (never its argv: the storage
    URL may hold a password)."""
    _terminate_on_sigterm()
    received = json.loads(settings)
    config = StudyConfig(**received["config"])
    proxy = ProxyInfo(**received["proxy"])
    from .cli import configure_logging, report_error

    configure_logging(config.verbose)
    try:
        return worker_main(config, proxy)
    except KeyboardInterrupt:
        _say(f"worker {os.getpid()} interrupted")
        return 130
    except DataproxyError as e:
        return report_error(e)
