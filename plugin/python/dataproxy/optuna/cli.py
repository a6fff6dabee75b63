"""`dataproxy-optuna`: an Optuna search with a data proxy, from the command line.

    dataproxy-optuna --space search_spaces/resnet_tiny.yaml --dataset fashion-mnist \\
        --data-root data --ratio 0.1 --n-trials 12 --epochs 2

makes (or reuses) the proxy, runs the study on SQLite in the experiment folder (or on a shared
PostgreSQL study with other workers: --storage-file PATH or $DATAPROXY_OPTUNA_STORAGE keep its
password out of the command line), and writes the report at the end.
Exit codes: 0 done; 1 the study or the report did not finish; 2 bad input; 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

import optuna

from dataproxy.errors import DataproxyError

from .objective import RunnerFailed
from .study import (
    PRUNERS,
    SAMPLERS,
    SELECTION_SPLITS,
    STORAGE_ENV,
    StudyConfig,
    run_study,
    url_has_password,
)

__all__ = ["build_parser", "main"]

_PROG = "dataproxy-optuna"


def _ratio(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a fraction (e.g. 0.1) nor 'auto'"
        ) from None


def build_parser() -> argparse.ArgumentParser:
    d = StudyConfig(space="", dataset="")
    p = argparse.ArgumentParser(
        prog=_PROG,
        description=(
            "Run an Optuna study whose trials train on a data proxy. SQLite in the experiment "
            "folder by default; several workers (--workers, or the same command on other "
            "machines) share one study through --storage postgresql://..."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    g = p.add_argument_group("data proxy")
    g.add_argument("--space", required=True, help="search-space YAML file")
    g.add_argument("--dataset", required=True, help="dataset name, e.g. fashion-mnist, cifar10")
    g.add_argument("--data-root", default=d.data_root, help="folder holding the datasets")
    g.add_argument(
        "--ratio",
        type=_ratio,
        default=d.ratio,
        help="proxy size (fraction), or 'auto': run `dataproxy calibrate` first and search on "
        "the proxy it recommends (method, ratio and length)",
    )
    g.add_argument(
        "--calibration-target",
        type=float,
        default=d.calibration_target,
        help="with --ratio auto: Spearman the choice's lower bound must reach",
    )
    g.add_argument(
        "--calibration-choice",
        action="append",
        default=[],
        metavar="METHOD:RATIO[:LENGTH]",
        help="with --ratio auto: a proxy choice to calibrate (repeat); default: calibrate's",
    )
    g.add_argument(
        "--calibration-trials",
        type=int,
        default=0,
        help="with --ratio auto: size the calibration budget for this many trials (default: "
        "--n-trials)",
    )
    g.add_argument(
        "--calibration-budget-share",
        type=float,
        default=d.calibration_budget_share,
        help="with --ratio auto: share of the full-data cost of those trials calibration may "
        "spend (it refuses when that cannot buy its smallest plan)",
    )
    g.add_argument(
        "--method",
        default=d.method,
        help="proxy selection method (default %(default)s; `dataproxy methods` lists them)",
    )
    g.add_argument(
        "--selection-split",
        choices=SELECTION_SPLITS,
        default=d.selection_split,
        help="half-test: a seeded half of the test split chooses the proxy and the other half "
        "ranks the candidates; paper-test: the whole test split does both (the paper; leaks)",
    )
    g.add_argument("--max-train", type=int, default=0, help="use the first N train samples")
    g.add_argument("--max-test", type=int, default=0, help="use the first N test samples")
    g.add_argument("--probe-epochs", type=int, default=0, help="probe training epochs")
    g.add_argument(
        "--image-size",
        type=int,
        default=0,
        help="resize images to N x N (0 = the data's most common size); the manifest records "
        "it, so every trial loads the same",
    )
    g.add_argument("--cache", default=None, help="proxy cache folder")
    g.add_argument("--manifest", default=None, help="use this manifest; skip generation")

    g = p.add_argument_group("study")
    g.add_argument("--n-trials", type=int, default=d.n_trials, help="finished trials wanted")
    g.add_argument("--epochs", type=int, default=0, help="epochs per trial (0 = the space's)")
    g.add_argument(
        "--proxy-steps",
        type=int,
        default=0,
        help="train each trial's proxy for this many optimizer steps instead of whole epochs "
        "(with --ratio 1 --method random: the full data for fewer steps); 0 = epochs; "
        "--ratio auto sets it when its choice is not whole epochs",
    )
    g.add_argument(
        "--eval-subset",
        type=int,
        default=None,
        help="test samples each trial evaluates after every epoch but the last (what the "
        "pruner sees; the final accuracy uses the whole split); 0 = the whole split "
        "(default: the runner's)",
    )
    g.add_argument(
        "--serve",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="keep one trial runner per worker thread that trains candidate after candidate "
        "(default, unless DATAPROXY_TRIAL_SERVE=0); --no-serve starts one process per trial",
    )
    g.add_argument("--sampler", choices=SAMPLERS, default=d.sampler)
    g.add_argument("--pruner", choices=PRUNERS, default=d.pruner)
    g.add_argument(
        "--pruner-startup-trials",
        type=int,
        default=d.pruner_startup_trials,
        help="trials before the median pruner prunes",
    )
    g.add_argument(
        "--spot-check-fraction",
        type=float,
        default=d.spot_check_fraction,
        help="share of trials also trained on the full data",
    )
    g.add_argument(
        "--spot-check-every", type=int, default=0, help="also spot-check every N-th trial"
    )
    g.add_argument(
        "--spot-check-first", type=int, default=0, help="also spot-check the first N trials"
    )
    g.add_argument(
        "--experiment",
        default=None,
        help="experiment folder (default experiments/<study name>)",
    )
    g.add_argument("--study-name", default=None, help="default <space>-<dataset>-<method>-<ratio>")
    g.add_argument(
        "--storage",
        default=None,
        help="storage URL (default $" + STORAGE_ENV + ", else sqlite:///<experiment>/study.db); "
        "postgresql://... to share. A password here is visible to every user of the machine: "
        "use --storage-file or $" + STORAGE_ENV,
    )
    g.add_argument(
        "--storage-file",
        default=None,
        metavar="PATH",
        help="read the storage URL from this file (readable by its owner only: chmod 600)",
    )
    g.add_argument(
        "--workers",
        type=int,
        default=d.workers,
        help="local worker processes (fine on SQLite for a few; PostgreSQL for many)",
    )
    g.add_argument(
        "--rerun-duplicates",
        action="store_true",
        help="train a configuration again when the sampler repeats it (default: reuse)",
    )
    g.add_argument("--seed", type=int, default=d.seed)
    g.add_argument("--no-report", action="store_true", help="skip 'dataproxy report' at the end")

    g = p.add_argument_group("execution")
    g.add_argument("--device", default=d.device, help="auto, cpu or cuda")
    g.add_argument("--threads", type=int, default=0, help="CPU threads per trial (0 = default)")
    g.add_argument(
        "--heartbeat-interval",
        type=int,
        default=d.heartbeat_interval,
        help="seconds between worker heartbeats (0 = off)",
    )
    g.add_argument(
        "--heartbeat-grace",
        type=int,
        default=0,
        help="seconds without heartbeat before a trial is failed (0 = 2 intervals)",
    )
    g.add_argument(
        "--max-failures", type=int, default=d.max_failures, help="failed trials per worker"
    )
    g.add_argument(
        "--stop-timeout",
        type=float,
        default=d.stop_timeout,
        help="seconds a pruned runner may take to stop before it is killed",
    )
    g.add_argument("--dataproxy-bin", default=None, help="path of the dataproxy program")
    g.add_argument("--trial-bin", default=None, help="path of the dataproxy-trial program")
    g.add_argument("-v", "--verbose", action="store_true", help="show the runners' stderr")
    return p


def config_from_args(args: argparse.Namespace) -> StudyConfig:
    return StudyConfig(
        space=args.space,
        dataset=args.dataset,
        data_root=args.data_root,
        ratio=StudyConfig.ratio if args.ratio == "auto" else args.ratio,
        calibrate=args.ratio == "auto",
        calibration_target=args.calibration_target,
        calibration_choices=args.calibration_choice,
        calibration_trials=args.calibration_trials,
        calibration_budget_share=args.calibration_budget_share,
        method=args.method,
        selection_split=args.selection_split,
        max_train=args.max_train,
        max_test=args.max_test,
        probe_epochs=args.probe_epochs,
        image_size=args.image_size,
        cache=args.cache,
        manifest=args.manifest,
        n_trials=args.n_trials,
        epochs=args.epochs,
        proxy_steps=args.proxy_steps,
        eval_subset=args.eval_subset,
        serve=args.serve,
        sampler=args.sampler,
        pruner=args.pruner,
        pruner_startup_trials=args.pruner_startup_trials,
        spot_check_fraction=args.spot_check_fraction,
        spot_check_every=args.spot_check_every,
        spot_check_first=args.spot_check_first,
        experiment=args.experiment,
        study_name=args.study_name,
        storage=args.storage or (None if args.storage_file else os.environ.get(STORAGE_ENV)),
        storage_file=args.storage_file,
        workers=args.workers,
        seed=args.seed,
        device=args.device,
        threads=args.threads,
        heartbeat_interval=args.heartbeat_interval,
        heartbeat_grace=args.heartbeat_grace,
        max_failures=args.max_failures,
        stop_timeout=args.stop_timeout,
        reuse_duplicates=not args.rerun_duplicates,
        report=not args.no_report,
        dataproxy_bin=args.dataproxy_bin,
        trial_bin=args.trial_bin,
        verbose=args.verbose,
    )


class _NoRunnerTraceback(logging.Filter):
    """Optuna logs a caught objective error with its traceback; for a failed runner the
    message (exit code, last stderr line) is what helps, not our stack."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], RunnerFailed):
            record.exc_info = None
            record.exc_text = None
        return True


_handler: logging.Handler | None = None


def configure_logging(verbose: bool = False) -> None:
    """Optuna's messages on stderr, prefixed, without tracebacks of failed runners."""
    global _handler
    optuna.logging.disable_default_handler()
    if _handler is None:
        _handler = logging.StreamHandler(sys.stderr)
        _handler.setFormatter(logging.Formatter("[optuna] %(message)s"))
        _handler.addFilter(_NoRunnerTraceback())
        logging.getLogger("optuna").addHandler(_handler)
    optuna.logging.set_verbosity(optuna.logging.DEBUG if verbose else optuna.logging.INFO)


def report_error(error: BaseException) -> int:
    """Prints a user-facing error; returns the exit code (2 bad input, 3 data error, 1 a failed
    run)."""
    print(f"{_PROG}: error: {error}", file=sys.stderr, flush=True)
    code = getattr(error, "exit_code", 2)
    return code if code in (1, 2, 3) else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.storage and url_has_password(args.storage):
        print(
            f"{_PROG}: warning: the password in --storage is visible to every user of this "
            "machine (ps, /proc/<pid>/cmdline); put the URL in a file readable by you only "
            f"(--storage-file PATH) or in ${STORAGE_ENV}",
            file=sys.stderr,
            flush=True,
        )
    from .study import _terminate_on_sigterm

    _terminate_on_sigterm()
    configure_logging(args.verbose)
    try:
        return run_study(config_from_args(args))
    except KeyboardInterrupt:
        print(f"{_PROG}: interrupted", file=sys.stderr, flush=True)
        return 130
    except DataproxyError as e:
        return report_error(e)
