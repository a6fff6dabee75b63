#!/usr/bin/env python3
"""A stand-in for the `dataproxy` CLI in the adapter's unit tests: `generate`, `report` and
`methods` (the contract `dataproxy methods --json` keeps; test_commands.py checks the real one).
`space` is the real program's: what a space means is never faked. Every call is appended to
$FAKE_DATAPROXY_LOG (one JSON argv per line) when that is set."""

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path


def generate(argv):
    p = argparse.ArgumentParser()
    p.add_argument("--space", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--data-root", required=True)
    p.add_argument("--ratio", type=float, required=True)
    p.add_argument("--cache", default=None)
    args, _ = p.parse_known_args(argv)
    if args.dataset == "missing":
        print("dataset 'missing' not found under --data-root", file=sys.stderr)
        return 3
    key = hashlib.sha256(" ".join(sorted(argv)).encode()).hexdigest()[:16]
    folder = os.path.join(args.cache or os.path.join(args.data_root, ".cache"), key)
    path = os.path.join(folder, "manifest.json")
    hit = os.path.exists(path)
    os.makedirs(folder, exist_ok=True)
    with open(path, "w") as f:
        json.dump({"key": key, "ratio": args.ratio}, f)
    print(json.dumps({"event": "message", "text": "fake generate"}), flush=True)
    print(json.dumps({"event": "manifest", "path": path, "key": key, "cache_hit": hit}))
    return 0


def report(argv):
    p = argparse.ArgumentParser()
    p.add_argument("--results", required=True)
    p.add_argument("--manifest")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    lines = []
    path = os.path.join(args.results, "results.jsonl")
    if os.path.exists(path):
        with open(path) as f:
            lines = [json.loads(x) for x in f if x.strip()]
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "report.json"), "w") as f:
        json.dump({"trials": len(lines)}, f)
    with open(os.path.join(args.out, "report.html"), "w") as f:
        f.write(f"<html><body>{len(lines)} trials</body></html>")
    print(f"wrote {args.out}/report.html")
    return 0


def methods(argv):
    names = [("importance", True), ("random", False), ("stratified", False)]
    print(json.dumps([{"name": n, "needs_probes": p, "summary": "fake"} for n, p in names]))
    return 0


def space(argv):
    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "plugin" / "python"))
    from dataproxy.binaries import find_binary

    os.environ.pop("DATAPROXY_BIN", None)  # that may be this fake
    real = find_binary("dataproxy")
    os.execv(real, [real, "space", *argv])


if __name__ == "__main__":
    command, rest = sys.argv[1], sys.argv[2:]
    if os.environ.get("FAKE_DATAPROXY_LOG"):
        with open(os.environ["FAKE_DATAPROXY_LOG"], "a") as f:
            f.write(json.dumps(sys.argv[1:]) + "\n")
    commands = {"generate": generate, "report": report, "methods": methods, "space": space}
    sys.exit(commands[command](rest))
