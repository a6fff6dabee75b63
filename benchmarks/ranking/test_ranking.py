"""Checks of the ranking benchmark's own code (not of dataproxy): statistics, the plan's step
counts, the correctness encoding, and the whole run -> analyse pipeline against
fake_dataproxy.py (synthetic accuracies, seconds).

    .venv/bin/python -m pytest benchmarks/ranking/test_ranking.py -q
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

import plan  # noqa: E402
import stats  # noqa: E402
import tool  # noqa: E402


def test_sign_flip_exact() -> None:
    # All 8 differences positive: only the all-plus and all-minus sign patterns are as extreme.
    d = np.arange(1, 9, dtype=float)
    assert stats.sign_flip_p(d) == pytest.approx(2 / 2**8)
    assert stats.sign_flip_p(np.array([1.0, -1.0])) == 1.0


def test_paired_test_mde_and_zeros() -> None:
    t = stats.paired_test([0.1] * 5 + [0.3] * 5, [0.0] * 10)
    sd = np.std([0.1] * 5 + [0.3] * 5, ddof=1)
    assert t["mde"] == pytest.approx((1.959964 + 0.841621) * sd / np.sqrt(10), rel=1e-5)
    assert t["p_permutation"] < 0.01
    z = stats.paired_test([0.0] * 4, [0.0] * 4)
    assert z["p_permutation"] == 1.0 and z["p_wilcoxon"] == 1.0
    assert z["all_equal"] and z["mde"] is None
    u = stats.paired_test([0.5, None, 0.2], [0.1, 0.1, None])
    assert u["pairs"] == 1 and u["dropped"] == 2 and u["mde"] is None


def test_ceiling_is_each_seed_against_the_others() -> None:
    a = [[0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]]
    c = stats.ceiling(a)
    # Seed 3 reversed: against the mean of two identical ascending seeds its tau is -1.
    assert c["per_seed"][2]["kendall_all"] == pytest.approx(-1.0)
    assert len(c["per_seed"]) == 3


@pytest.mark.parametrize("name", ["cpu", "cpu-cifar10", "cpu-converged", "cpu-cifar10-converged"])
def test_cpu_tiers_give_5_percent_proxies_200_steps(name: str) -> None:
    tier = plan.TIERS[name]
    for sp in tier.spaces:
        rows = plan.steps_table(tier, sp, tier.max_train)
        paper5 = next(r for r in rows if r["ratio"] == 0.05 and r["length"] == plan.PAPER)
        assert paper5["steps"] >= 200


def test_the_longer_cifar_tier_checks_convergence_and_reuses_a_cached_seed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runner import Runner

    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{os.environ['PATH']}")

    runs = {}
    for name in ("cpu-cifar10", "cpu-cifar10-converged"):
        r = Runner(plan.TIERS[name], name, tmp_path / name, HERE / "fake_dataproxy.py", None, ".")
        sp = r.tier.spaces[0]
        runs[name] = [
            (role, s, e, r.reference_dir(sp, s, e)[0]) for s, e, role in r.reference_runs(sp)
        ]
    longer = runs["cpu-cifar10-converged"]
    assert [(role, e) for role, _, e, _ in longer] == [
        ("convergence", 80),
        ("reference", 40),
        ("reference", 40),
        ("reference", 40),
    ]
    assert [s for _, s, _, _ in longer] == [1001, 1001, 1002, 1003]
    # A 40-epoch seed 1001 is keyed by its settings only, not by the tier that asked for it: the
    # 20-epoch definition's check is the 40-epoch tier's first seed.
    twenty = dataclasses.replace(copy.deepcopy(plan.TIERS["cpu-cifar10"]), epochs=20)
    r20 = Runner(twenty, "twenty", tmp_path / "twenty", HERE / "fake_dataproxy.py", None, ".")
    check20 = next(x for x in r20.reference_runs(r20.tier.spaces[0]) if x[2] == "convergence")
    assert check20[:2] == (1001, 40)
    assert r20.reference_dir(r20.tier.spaces[0], 1001, 40)[0] == longer[1][3]
    short_check = runs["cpu-cifar10"][0]
    assert short_check[:3] == ("convergence", 1001, 20)
    assert not list(tmp_path.glob("**/settings.json"))  # computing a key writes nothing


def test_decode_correct_round_trip() -> None:
    ok = np.random.default_rng(0).random(1003) < 0.7
    rec = {
        "extra": {
            "test_size": 1003,
            "correct_bits": base64.b64encode(np.packbits(ok).tobytes()).decode(),
        }
    }
    assert np.array_equal(tool.decode_correct(rec), ok)


def test_records_of_both_schemas_read_alike() -> None:
    # A record of the committed reference cache (flat "extra", schema 1) and the same record
    # as dataproxy writes it now (typed groups, schema 2).
    cache = ROOT / "benchmarks" / "results" / "ranking_cache"
    old = next(
        json.loads(line)
        for store in sorted(cache.glob("*/results.jsonl"))
        for line in store.read_text().splitlines()
        if "correct_bits" in line
    )
    e = old["extra"]
    new = {k: v for k, v in old.items() if k != "extra"} | {
        "schema": "dataproxy.result/2",
        "training": {
            "epochs": e["epochs"],
            "steps": e.get("steps", 0),
            "samples_seen": e.get("samples_seen", 0),
            "seed": e["train_seed"],
        },
        "data": {"train_size": e["train_size"], "test_size": e["test_size"]},
        "correct": {"on": e["correct_on"], "bits": e["correct_bits"]},
    }
    assert tool.record_extra(old) is e
    typed = tool.record_extra(new)
    for key in ("data", "train_size", "test_size", "epochs", "train_seed", "steps", "correct_bits"):
        assert typed[key] == e[key], key
    assert np.array_equal(tool.decode_correct(old), tool.decode_correct(new))
    assert tool.decode_correct(old).mean() == pytest.approx(old["full_accuracy"])
    from runner import record_identity

    assert record_identity(old) == record_identity(new)


def test_arms_from_the_cpp_list() -> None:
    arms = plan.arms(
        [
            {"name": "importance", "needs_probes": True},
            {"name": "random", "needs_probes": False},
        ]
    )
    assert [a.name for a in arms] == ["importance", "importance-global", "random", "full-steps"]
    assert plan.main_arm(arms).name == "importance"


def test_pipeline_against_the_fake_binary(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    subprocess.run(
        [
            sys.executable,
            str(HERE / "run.py"),
            "run",
            "--tier",
            "smoke",
            "--run-dir",
            str(run_dir),
            "--bin",
            str(HERE / "fake_dataproxy.py"),
        ],
        check=True,
        capture_output=True,
        # The fake's `#!/usr/bin/env python3` must find this interpreter (NumPy, PyYAML).
        # Its stores mix both record schemas, as a store older and newer binaries appended to.
        env={
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "FAKE_DATAPROXY_RECORD_SCHEMA": "mixed",
        },
    )
    summary = (run_dir / "ranking_smoke_summary.md").read_text()
    assert "importance (per class)" in summary and "full data, fewer steps" in summary
    doc = json.loads(next(run_dir.glob("ranking_smoke_2*.json")).read_text())
    space = doc["spaces"][0]
    arms = {r["arm"] for r in space["rows"]}
    assert arms == {"importance", "importance-global", "random", "stratified", "full-steps"}
    assert all(len(r["seeds"]) == 2 for r in space["rows"])
    assert all(s["matched"] for s in space["steps_check"])
    assert (run_dir / "ranking_smoke_fmnist_size_tau_vs_cost.png").stat().st_size > 0
    # Importance is charged its probes, and its speedup is the full search over all of that.
    main = next(r for r in space["rows"] if r["arm"] == "importance" and r["length"] == "paper")
    fixed = main["cost"]["end_to_end_passes"] - main["cost"]["search_passes"]
    assert fixed > 0  # the probes are charged
    assert main["cost"]["speedup_passes"] == pytest.approx(
        space["reference"]["search_passes"] / main["cost"]["end_to_end_passes"]
    )


@pytest.mark.parametrize("check_last", [False, True])
def test_convergence_check_trains_first_or_after_the_proxies(
    tmp_path: Path, check_last: bool
) -> None:
    run_dir = tmp_path / "run"
    argv = [sys.executable, str(HERE / "run.py"), "run", "--tier", "smoke", "--no-analyse"]
    argv += ["--run-dir", str(run_dir), "--bin", str(HERE / "fake_dataproxy.py"), "--seeds", "1"]
    subprocess.run(
        argv + (["--check-last"] if check_last else []),
        check=True,
        capture_output=True,
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
    )
    kinds = [
        ("check" if "convergence" in e.get("unit", "") else e["kind"])
        for e in map(json.loads, (run_dir / "events.jsonl").read_text().splitlines())
        if e["kind"] in ("reference", "proxy", "block")
    ]
    assert "check" in kinds and "block" in kinds
    last_block = max(i for i, k in enumerate(kinds) if k == "block")
    checks = [i for i, k in enumerate(kinds) if k == "check"]
    refs = [i for i, k in enumerate(kinds) if k == "reference"]
    if check_last:
        assert min(checks) > last_block and max(refs) < min(checks)
    else:
        assert max(checks) < min(refs) and max(checks) < last_block
        return
    # A check cut short (a session ended) is reported for the configurations it has.
    store = next((run_dir / "reference_cache").glob("fmnist_size-e2-s1001-*/results.jsonl"))
    lines = store.read_text().splitlines()

    def summary_with(kept: list[str]) -> str:
        store.write_text("".join(f"{x}\n" for x in kept))
        subprocess.run(
            [sys.executable, str(HERE / "run.py"), "analyse", str(run_dir), "--out", str(run_dir)]
            + ["--bin", str(HERE / "fake_dataproxy.py")],
            check=True,
            capture_output=True,
            env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
        )
        return (run_dir / "ranking_smoke_summary.md").read_text()

    summary = summary_with(lines[:3])
    assert f"(seed 1001, 2 against 1 epochs, 3 of {len(lines)} configurations so far)" in summary
    assert "pending" in summary
    assert "Convergence check (seed 1001, 2 epochs): not trained yet." in summary_with([])


def test_split_shares_configurations_and_cost() -> None:
    from runner import Unit, split

    u = Unit("proxy", "s.yaml", 3, "p.jsonl", tuple("abcde"), 50.0, "arm 5% paper seed 3")
    parts = split(u, 2)
    assert [p.configs for p in parts] == [("a", "c", "e"), ("b", "d")]
    assert [p.cost for p in parts] == [30.0, 20.0]
    assert [p.label for p in parts] == [
        "arm 5% paper seed 3 part 1/2",
        "arm 5% paper seed 3 part 2/2",
    ]
    assert all(p.seed == 3 and p.store == "p.jsonl" for p in parts)
    assert split(u, 1) == [u]
    one = Unit("proxy", "s.yaml", 3, "p.jsonl", ("a",), 10.0, "x")
    assert split(one, 4) == [one]


def test_end_to_end_goal_projects_the_probes_over_100_configurations() -> None:
    import analyse

    row = {
        "arm": "importance",
        "ratio": 0.05,
        "length": plan.PAPER,
        "summary": {"kendall_all": {"mean": 0.7}},
        # 12 candidates at 12.8k passes each, probes and features 515,333 passes
        "cost": {"search_passes": 153600.0, "end_to_end_passes": 668933.0, "speedup_passes": 4.59},
    }
    res = {
        "main_arm": "importance",
        "configs": [f"c{i}" for i in range(12)],
        "comparisons": [],
        "rows": [row],
        "reference": {"search_passes": 3072000.0},
    }
    g = next(g for g in analyse.goals(res) if "projected for 100" in g["goal"])
    # 100 x 256k full-data passes against 515,333 + 100 x 12.8k
    assert "4.6x for 12; 14.3x for 100" in g["measured"] and g["met"]
    row["cost"]["speedup_passes"] = 3.0
    assert not next(g for g in analyse.goals(res) if "projected" in g["goal"])["met"]
