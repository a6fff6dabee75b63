#!/usr/bin/env python3
"""A stand-in for the `dataproxy` binary that speaks its CLI contract (methods --json, version,
generate, evaluate with --record-correct / --steps / --list-configs) with synthetic accuracies,
in milliseconds. It checks the benchmark's plumbing (plan, runner, resume, analysis, tables,
plots) without training anything:

    .venv/bin/python benchmarks/ranking/run.py run --tier smoke \\
        --bin benchmarks/ranking/fake_dataproxy.py

Nothing it prints is a measurement.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import itertools
import json
import os
import sys
from pathlib import Path

import numpy as np
import yaml

METHODS = [
    {"name": "importance", "needs_probes": True, "summary": "probe-pair importance (fake)"},
    {"name": "random", "needs_probes": False, "summary": "uniform draw (fake)"},
    {"name": "stratified", "needs_probes": False, "summary": "per-class uniform draw (fake)"},
]


def _record_schema(k: int) -> int:
    """Which record schema to write: FAKE_DATAPROXY_RECORD_SCHEMA "1" (flat "extra", as
    binaries before the typed groups wrote), "2" (typed, the default) or "mixed" (alternating:
    a store both kinds of binary appended to)."""
    mode = os.environ.get("FAKE_DATAPROXY_RECORD_SCHEMA", "2")
    if mode == "mixed":
        return 1 + k % 2
    return int(mode)


def _typed(rec: dict) -> dict:
    """A flat-"extra" record in the typed schema, as dataproxy writes it now."""
    e = rec.pop("extra")
    rec["schema"] = "dataproxy.result/2"
    rec["training"] = {
        "epochs": e["epochs"],
        "proxy_epochs": e["epochs"] if e["data"] == "proxy" else 0,
        "steps": e["steps"],
        "samples_seen": e["samples_seen"],
        "seed": e["train_seed"],
    }
    rec["data"] = {
        "train_size": e["train_size"],
        "test_size": e["test_size"],
        "method": e.get("method", ""),
        "ratio": e.get("ratio", 0.0),
        "sampling_seed": e.get("sampling_seed", 0),
    }
    if "correct_bits" in e:
        rec["correct"] = {"on": e["correct_on"], "bits": e["correct_bits"]}
    return rec


def configs(space: str) -> list[tuple[str, dict]]:
    doc = yaml.safe_load(Path(space).read_text())
    params = doc["parameters"]
    out = []
    for values in itertools.product(*(p["choices"] for p in params)):
        c = {p["name"]: v for p, v in zip(params, values)}
        out.append(("_".join(f"{k}{v}" for k, v in c.items()), c))
    return out


def rng_for(*parts: object) -> np.random.Generator:
    h = hashlib.sha256(json.dumps(parts, default=str).encode()).digest()
    return np.random.default_rng(int.from_bytes(h[:8], "little"))


def split(max_test: int, seed: int, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    perm = rng_for("split", seed).permutation(max_test)
    k = int(round(fraction * max_test))
    return np.sort(perm[:k]), np.sort(perm[k:])


def correct(n_test: int, quality: float, noise: float, *seed: object) -> np.ndarray:
    difficulty = rng_for("difficulty").random(n_test)
    q = quality + rng_for(*seed).normal(0, noise)
    return difficulty < q + rng_for(*seed, "samples").normal(0, 0.05, n_test)


def main() -> None:
    if sys.argv[1:2] == ["version"]:
        print("dataproxy 0.0.0-fake (synthetic accuracies)")
        return
    if sys.argv[1:3] == ["methods", "--json"]:
        print(json.dumps(METHODS))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("command")
    for opt in (
        "space dataset data-root max-train max-test threads ratio method draw seed "
        "selection-split selection-fraction probe-epochs cache report device results epochs "
        "steps configs"
    ).split():
        ap.add_argument(f"--{opt}")
    ap.add_argument("--manifest", action="append", default=[])
    ap.add_argument("--record-correct", action="store_true")
    ap.add_argument("--list-configs", action="store_true")
    a = ap.parse_args()
    cfgs = configs(a.space)
    if a.command == "evaluate" and a.list_configs:
        for cid, c in cfgs:
            print(json.dumps({"event": "config", "config_id": cid, "config": c}))
        return
    n_train, n_test = int(a.max_train), int(a.max_test)
    if a.command == "generate":
        ratio, seed = float(a.ratio), int(a.seed)
        draw = a.draw or "per-class"
        key = hashlib.sha256(f"{a.space}{a.method}{draw}{ratio}{seed}".encode()).hexdigest()
        d = Path(a.cache) / key[:16]
        d.mkdir(parents=True, exist_ok=True)
        sel, ev = split(n_test, seed, float(a.selection_fraction))
        sel.astype("<i8").tofile(d / "selection.bin")
        ev.astype("<i8").tofile(d / "evaluation.bin")
        size = int(round(ratio * n_train))
        probes = a.method == "importance"
        m = {
            "schema": 2,
            "key": key,
            "method": a.method,
            "ratio": ratio,
            "seed": seed,
            "settings": {"draw": draw} if probes else {},
            "class_counts": [size // 10] * 9 + [size - 9 * (size // 10)],
            "probes": [
                {"config_id": cfgs[0][0], "test_accuracy": 0.6, "train_seconds": 1.0},
                {"config_id": cfgs[-1][0], "test_accuracy": 0.85, "train_seconds": 3.0},
            ]
            if probes
            else [],
            "stage_seconds": {"probes": 4.0, "features": 0.5, "pca": 0.1, "knn": 0.1}
            if probes
            else {"sampling": 0.01},
            "selection": {
                "split": a.selection_split,
                "fraction": float(a.selection_fraction),
                "seed": seed,
                "selection_file": "selection.bin",
                "selection_size": len(sel),
                "evaluation_file": "evaluation.bin",
                "evaluation_size": len(ev),
            },
        }
        (d / "manifest.json").write_text(json.dumps(m))
        print(json.dumps({"event": "manifest", "path": str(d / "manifest.json"), "key": key}))
        return
    # evaluate
    wanted = set(json.loads(a.configs)) if a.configs else {cid for cid, _ in cfgs}
    seed = int(a.seed)
    targets = [json.loads(Path(p).read_text()) | {"path": p} for p in a.manifest] or [None]
    with open(a.results, "a") as out:
        for t in targets:
            for k, (cid, c) in enumerate(cfgs):
                if cid not in wanted:
                    continue
                quality = 0.55 + 0.03 * k
                if t is None:
                    steps = int(a.steps) if a.steps else int(a.epochs) * (n_train // 16)
                    scale = min(1.0, steps / (int(a.epochs or 1) * n_train / 16))
                    ok = correct(n_test, quality * (0.8 + 0.2 * scale), 0.02, "full", cid, seed)
                    seen = steps * 16
                    idx = None
                else:
                    boost = 0.02 if t["method"] == "importance" else 0.0
                    q = quality * (0.7 + t["ratio"] * 2) + boost * k / 12
                    ok = correct(n_test, q, 0.04, t["key"], cid, seed, a.epochs)
                    idx = np.fromfile(Path(t["path"]).parent / "evaluation.bin", dtype="<i8")
                    ok = ok[idx]
                    steps = int(a.epochs) * -(-sum(t["class_counts"]) // 16)
                    seen = int(a.epochs) * sum(t["class_counts"])
                extra = {
                    "data": "full" if t is None else "proxy",
                    "train_size": n_train if t is None else sum(t["class_counts"]),
                    "test_size": int(len(ok)),
                    "epochs": int(a.epochs) if a.epochs else 1,
                    "train_seed": seed,
                    "steps": steps,
                    "samples_seen": seen,
                    "train_seconds": seen / 2000,
                    "total_seconds": seen / 2000 + 0.1,
                }
                if a.record_correct:
                    extra["correct_on"] = "test" if t is None else "evaluation"
                    extra["correct_bits"] = base64.b64encode(np.packbits(ok).tobytes()).decode()
                rec = {
                    "config_id": cid,
                    "config": c,
                    "full_accuracy": float(ok.mean()) if t is None else None,
                    "full_seconds": seen / 2000 if t is None else 0.0,
                    "proxy_accuracy": float(ok.mean()) if t is not None else None,
                    "proxy_seconds": seen / 2000 if t is not None else 0.0,
                    "manifest_key": "" if t is None else t["key"],
                    "extra": extra
                    | (
                        {"method": t["method"], "ratio": t["ratio"], "sampling_seed": t["seed"]}
                        if t
                        else {}
                    ),
                }
                if _record_schema(k) == 2:
                    rec = _typed(rec)
                out.write(json.dumps(rec) + "\n")
                print(json.dumps(rec))


if __name__ == "__main__":
    main()
