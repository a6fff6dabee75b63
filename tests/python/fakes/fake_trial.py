#!/usr/bin/env python3
"""A stand-in for dataproxy-trial in the adapter's unit tests: same options, same JSON Lines.

Accuracy grows with the parameter values (so pruners see bad and good trials). Knobs, from the
environment: FAKE_EPOCH_SECONDS (sleep per epoch), FAKE_CRASH (exit code, with a message on
stderr, after the first epoch), FAKE_PIDFILE (append our pid), FAKE_ARGVFILE (append our argv
as JSON), FAKE_IGNORE_SIGINT (keep going on SIGINT and SIGUSR1).
"""

import argparse
import json
import os
import signal
import sys
import time

stop = {"asked": False, "pruned": False}


def on_signal(signum, frame):
    stop["pruned"] = stop["pruned"] or (signum == signal.SIGUSR1 and not stop["asked"])
    stop["asked"] = True


def emit(obj):
    # Like a runner that ignores SIGPIPE: a closed stdout does not stop the training, so only
    # the adapter's parent-death safeguard can end an orphan.
    try:
        print(json.dumps(obj), flush=True)
    except BrokenPipeError:
        sys.stdout = open(os.devnull, "w")


def main():
    p = argparse.ArgumentParser()
    for name in (
        "--manifest",
        "--space",
        "--data-root",
        "--params",
        "--results",
        "--trial-id",
        "--framework",
        "--device",
        "--report",
        "--threads",
        "--seed",
        "--eval-subset",
        "--proxy-epochs",
        "--proxy-steps",
    ):
        p.add_argument(name)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--spot-check", action="store_true")
    args = p.parse_args()
    if os.environ.get("FAKE_PIDFILE"):
        with open(os.environ["FAKE_PIDFILE"], "a") as f:
            f.write(f"{os.getpid()}\n")
    if os.environ.get("FAKE_ARGVFILE"):
        with open(os.environ["FAKE_ARGVFILE"], "a") as f:
            f.write(json.dumps(sys.argv[1:]) + "\n")
    if os.environ.get("FAKE_IGNORE_SIGINT"):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGUSR1, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    params = json.loads(args.params)
    score = sum(float(v) if not isinstance(v, str) else len(v) for v in params.values())
    top = 0.5 + 0.4 * (score / (score + 20.0))
    delay = float(os.environ.get("FAKE_EPOCH_SECONDS", "0"))
    crash = int(os.environ.get("FAKE_CRASH", "0"))
    emit({"event": "start", "trial_id": args.trial_id})
    curve = []
    phases = ["proxy", "full"] if args.spot_check else ["proxy"]
    for phase in phases:
        for epoch in range(1, args.epochs + 1):
            deadline = time.time() + delay
            while time.time() < deadline and not stop["asked"]:
                time.sleep(0.02)
            if stop["asked"]:
                emit({"event": "pruned" if stop["pruned"] else "interrupted"})
                sys.exit(0 if stop["pruned"] else 130)
            acc = top * epoch / args.epochs
            if phase == "proxy":
                curve.append(acc)
            emit(
                {
                    "event": "epoch",
                    "phase": phase,
                    "epoch": epoch,
                    "epochs": args.epochs,
                    "test_accuracy": acc,
                    "loss": 1.0 - acc,
                }
            )
            if crash:
                print("fake runner: simulated failure (CUDA out of memory)", file=sys.stderr)
                sys.exit(crash)
    full = top + 0.05 if args.spot_check else None
    record = {
        "trial_id": args.trial_id,
        "framework": args.framework,
        "config": params,
        "status": "complete",
        "proxy_accuracy": curve[-1],
        "full_accuracy": full,
        "spot_check": args.spot_check,
    }
    if args.results:
        os.makedirs(args.results, exist_ok=True)
        with open(os.path.join(args.results, "results.jsonl"), "a") as f:
            f.write(json.dumps(record) + "\n")
    emit(
        {
            "event": "final",
            "status": "complete",
            "proxy_accuracy": curve[-1],
            "full_accuracy": full,
            "spot_check": args.spot_check,
            "spearman": None,
            "kendall": None,
            "n_spot_checks": 0,
        }
    )


if __name__ == "__main__":
    main()
