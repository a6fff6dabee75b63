"""From a run folder and the reference cache to numbers: the averaged reference and its noise,
every arm's per-seed rankings on the evaluation split selection never saw, the paired tests of
the main method against every alternative, the cost ledger, the goals and the verdicts.

The result is one JSON-able dict per space; tables.py and plots.py render it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import plan as planmod
import stats
import tool
from plan import FULL_STEPS, PAPER, SpacePlan, Tier
from runner import Runner, record_identity, reference_stores
from util import git_commit, read_jsonl, rel

FORWARD_PASS_COST = 1 / 3  # a forward pass (the probes' feature pass) in training image passes
METRICS = (
    ("kendall_all", "tau (all)"),
    ("kendall_top", "tau (top half)"),
    ("regret_points", "regret"),
)


def latest(records: list[dict], key) -> dict:
    out = {}
    for r in records:
        out[key(r)] = r
    return out


def load_reference(runner: Runner, plan: SpacePlan, ids: list[str]) -> dict:
    """Every reference training's accuracies and per-test-sample correctness, by role."""
    runs = []
    for seed, epochs, role, store in reference_stores(runner, plan):
        recs = latest(read_jsonl(store), lambda r: r["config_id"])
        if not set(ids) <= set(recs):
            # What a partial run has so far (a convergence check may still be training).
            partial = {i: recs[i]["full_accuracy"] for i in ids if i in recs}
            runs.append(
                {
                    "seed": seed,
                    "epochs": epochs,
                    "role": role,
                    "complete": False,
                    "partial": partial,
                }
            )
            continue
        correct = []
        for i in ids:
            c = tool.decode_correct(recs[i])
            if c is None:
                raise RuntimeError(f"{store}: {i} has no correct_bits (trained without them)")
            if abs(c.mean() - recs[i]["full_accuracy"]) > 1e-6:
                raise RuntimeError(f"{store}: {i}'s correct_bits disagree with its accuracy")
            correct.append(c)
        runs.append(
            {
                "seed": seed,
                "epochs": epochs,
                "role": role,
                "complete": True,
                "dir": rel(store.parent),
                "accuracy": [recs[i]["full_accuracy"] for i in ids],
                "correct": np.stack(correct),  # [configs, test samples]
                "train_seconds": sum(recs[i]["full_seconds"] for i in ids),
                "samples_seen": sum(
                    tool.record_extra(recs[i]).get("samples_seen")
                    or tool.record_extra(recs[i])["train_size"]
                    * tool.record_extra(recs[i])["epochs"]
                    for i in ids
                ),
                "train_size": tool.record_extra(recs[ids[0]])["train_size"],
                "test_size": tool.record_extra(recs[ids[0]])["test_size"],
            }
        )
    return {"runs": runs}


def manifest_indices(manifest_path: str, which: str) -> np.ndarray:
    d = Path(manifest_path).parent
    m = json.loads(Path(manifest_path).read_text())
    sel = m.get("selection") or {}
    name = sel.get(f"{which}_file")
    if not name:
        raise RuntimeError(f"{manifest_path}: no selection.{which}_file (schema 1 manifest?)")
    return tool.read_indices(d / name)


def analyse_space(runner: Runner, plan: SpacePlan, tier: Tier) -> dict:
    ids = runner.ids(plan)
    ref = load_reference(runner, plan, ids)
    main_runs = [r for r in ref["runs"] if r["role"] == "reference" and r["complete"]]
    res: dict = {
        "space": plan.space,
        "evidence": plan.evidence,
        "configs": ids,
        "main_arm": runner.main.name,
        "reference": {
            "seeds": [r["seed"] for r in main_runs],
            "missing": [
                {"seed": r["seed"], "epochs": r["epochs"], "role": r["role"]}
                for r in ref["runs"]
                if not r["complete"]
            ],
            "epochs": planmod.reference_epochs(tier, plan),
            "dirs": [r["dir"] for r in main_runs],
        },
    }
    if not main_runs:
        res["rows"] = []
        return res
    acc_runs = np.array([r["accuracy"] for r in main_runs])  # [seeds, configs]
    ref_mean = acc_runs.mean(axis=0)
    res["reference"].update(
        {
            "accuracy_per_seed": acc_runs.tolist(),
            "accuracy_mean": ref_mean.tolist(),
            "accuracy_sd": acc_runs.std(axis=0, ddof=1).tolist() if len(acc_runs) > 1 else None,
            "ceiling_test": stats.ceiling(acc_runs.tolist()),
            "search_passes": float(np.mean([r["samples_seen"] for r in main_runs])),
            "search_seconds": float(np.mean([r["train_seconds"] for r in main_runs])),
            "train_size": main_runs[0]["train_size"],
            "test_size": main_runs[0]["test_size"],
        }
    )
    conv = next((r for r in ref["runs"] if r["role"] == "convergence"), None)
    base = next((r for r in main_runs if conv and r["seed"] == conv["seed"]), None)
    if base and not (conv["complete"] or conv["partial"]):
        res["reference"]["convergence"] = {
            "seed": conv["seed"],
            "epochs": conv["epochs"],
            "complete": False,
            "configs_checked": 0,
        }
    elif base:
        got = conv["accuracy"] if conv["complete"] else [conv["partial"].get(i) for i in ids]
        pairs = [(b, c) for b, c in zip(base["accuracy"], got) if c is not None]
        diff = 100 * (np.array([c for _, c in pairs]) - np.array([b for b, _ in pairs]))
        res["reference"]["convergence"] = {
            "seed": conv["seed"],
            "epochs": conv["epochs"],
            "complete": conv["complete"],
            "configs_checked": len(pairs),
            "accuracy": got,
            "diff_points": [
                None if c is None else 100 * (c - b) for b, c in zip(base["accuracy"], got)
            ],
            "max_abs_points": float(np.abs(diff).max()),
            "mean_points": float(diff.mean()),
            "within_1_point": int((np.abs(diff) <= 1.0).sum()),
            "kendall": (
                stats.ranking_metrics(list(base["accuracy"]), list(got))["all"]["kendall"]
                if conv["complete"]
                else None
            ),
            "met": bool(conv["complete"] and np.abs(diff).max() <= 1.0),
        }
    correct = np.stack([r["correct"] for r in main_runs])  # [seeds, configs, test]
    train_size = main_runs[0]["train_size"]
    test_size = main_runs[0]["test_size"]

    gens = [g for g in read_jsonl(runner.gen_path) if g["space"] == plan.space]
    # The evaluation split of each proxy seed (selection never saw it), from its manifests.
    eval_idx: dict[int, np.ndarray] = {}
    split_mismatch = []
    for g in gens:
        idx = manifest_indices(g["path"], "evaluation")
        if g["seed"] not in eval_idx:
            eval_idx[g["seed"]] = idx
        elif not np.array_equal(eval_idx[g["seed"]], idx):
            split_mismatch.append(f"{g['arm']} {g['ratio']} seed {g['seed']}")
    res["evaluation_split"] = {
        "sizes": {str(s): int(len(v)) for s, v in sorted(eval_idx.items())},
        "mismatch": split_mismatch,
    }

    def ref_on(idx: np.ndarray) -> list[float]:
        return correct[:, :, idx].mean(axis=2).mean(axis=0).tolist()

    # The ceiling on each proxy seed's evaluation split (the scale the proxies are measured on).
    ceil_eval = [
        stats.ceiling(correct[:, :, idx].mean(axis=2).tolist()) for idx in eval_idx.values()
    ]
    res["reference"]["ceiling_evaluation"] = {
        k: (float(np.mean([c[k] for c in ceil_eval if c[k] is not None])) if ceil_eval else None)
        for k in ("kendall_all", "kendall_top", "regret_points")
    }

    # Probe costs (paid once per search, charged to every arm that needs probes).
    probe = {"passes": 0.0, "seconds": 0.0, "feature_passes": 0.0, "feature_seconds": 0.0}
    for g in gens:
        if g["probes"]:
            probes = g["probes"]
            probe["configs"] = [p.get("config_id") for p in probes]
            probe["accuracy"] = [p.get("test_accuracy") for p in probes]
            probe["seconds"] = sum(float(p.get("train_seconds") or 0) for p in probes)
            probe["passes"] = float(
                sum(
                    p.get("samples_seen")
                    or train_size * (p.get("epochs") or planmod.reference_epochs(tier, plan))
                    for p in probes
                )
            )
            probe["feature_seconds"] = max(
                probe["feature_seconds"], float(g["stage_seconds"].get("features") or 0)
            )
            probe["feature_passes"] = FORWARD_PASS_COST * (train_size + test_size)
    res["probes"] = probe

    # Records of the proxy store, by what they belong to.
    recs = latest(
        read_jsonl(runner.proxy_store(plan)),
        lambda r: (*record_identity(r), r["config_id"]),
    )
    by_ident: dict[tuple, dict[str, dict]] = {}
    for (*ident, cid), r in recs.items():
        by_ident.setdefault(tuple(ident), {})[cid] = r

    bs = planmod.space_training(plan.space)["batch_size"]
    rows = []
    for length in plan.lengths:
        e = planmod.length_epochs(tier, plan, length)
        for ratio in plan.ratios:
            for arm in runner.arms:
                if not plan.runs(arm, ratio, length):
                    continue
                per_seed = []
                for seed in sorted(eval_idx):
                    idx = eval_idx[seed]
                    if arm.kind == "proxy":
                        g = next(
                            (
                                x
                                for x in gens
                                if x["arm"] == arm.name
                                and x["ratio"] == ratio
                                and x["seed"] == seed
                            ),
                            None,
                        )
                        if g is None:
                            continue
                        got = by_ident.get(("proxy", g["key"], e, seed), {})
                        if not set(ids) <= set(got):
                            continue
                        acc = [got[i]["proxy_accuracy"] for i in ids]
                        seconds = sum(got[i]["proxy_seconds"] for i in ids)
                        ref_acc = ref_on(manifest_indices(g["path"], "evaluation"))
                        stages = g["stage_seconds"]
                        selection_s = sum(
                            float(v or 0)
                            for k, v in stages.items()
                            if k not in ("probes", "features", "total")
                        )
                    else:
                        k = planmod.proxy_steps(planmod.proxy_size(ratio, train_size), bs, e)
                        got = by_ident.get((FULL_STEPS, k, seed), {})
                        if not set(ids) <= set(got):
                            continue
                        acc = [float(tool.decode_correct(got[i])[idx].mean()) for i in ids]
                        seconds = sum(got[i]["full_seconds"] for i in ids)
                        ref_acc = ref_on(idx)
                        selection_s = 0.0
                    passes = sum(
                        tool.record_extra(got[i]).get("samples_seen")
                        or (tool.record_extra(got[i]).get("steps") or 0) * bs
                        for i in ids
                    )
                    m = stats.ranking_metrics(ref_acc, acc)
                    p_passes = probe["passes"] + probe["feature_passes"] if arm.needs_probes else 0
                    p_seconds = (
                        probe["seconds"] + probe["feature_seconds"] if arm.needs_probes else 0
                    )
                    per_seed.append(
                        {
                            "seed": seed,
                            "kendall_all": m["all"]["kendall"],
                            "kendall_top": m["top"]["kendall"],
                            "spearman_all": m["all"]["spearman"],
                            "pearson_all": m["all"]["pearson"],
                            "regret_points": m["regret_points"],
                            "top1_kept": m["top1_kept"],
                            "accuracy": acc,
                            "reference_accuracy": ref_acc,
                            "steps": [tool.record_extra(got[i]).get("steps") for i in ids],
                            "search_passes": float(passes),
                            "search_seconds": float(seconds),
                            "selection_seconds": selection_s,
                            "end_to_end_passes": float(passes + p_passes),
                            "end_to_end_seconds": float(seconds + selection_s + p_seconds),
                        }
                    )
                if not per_seed:
                    continue
                summary = {
                    k: stats.bootstrap_mean([p[k] for p in per_seed])
                    for k in (
                        "kendall_all",
                        "kendall_top",
                        "spearman_all",
                        "pearson_all",
                        "regret_points",
                    )
                }
                summary["top1_kept"] = sum(1 for p in per_seed if p["top1_kept"])
                cost = {
                    k: float(np.mean([p[k] for p in per_seed]))
                    for k in (
                        "search_passes",
                        "search_seconds",
                        "selection_seconds",
                        "end_to_end_passes",
                        "end_to_end_seconds",
                    )
                }
                ref_passes = res["reference"]["search_passes"]
                cost["speedup_passes"] = ref_passes / cost["end_to_end_passes"]
                cost["speedup_seconds"] = (
                    res["reference"]["search_seconds"] / cost["end_to_end_seconds"]
                )
                steps = sorted({s for p in per_seed for s in p["steps"] if s is not None})
                rows.append(
                    {
                        "arm": arm.name,
                        "ratio": ratio,
                        "length": length,
                        "epochs": e,
                        "seeds": [p["seed"] for p in per_seed],
                        "steps": steps,
                        "per_seed": per_seed,
                        "summary": summary,
                        "cost": cost,
                        "mean_accuracy": np.mean(
                            [p["accuracy"] for p in per_seed], axis=0
                        ).tolist(),
                    }
                )
    res["rows"] = rows
    res["steps_check"] = steps_check(rows)
    res["comparisons"] = comparisons(rows, runner.main.name)
    res["goals"] = goals(res)
    res["pareto"] = pareto(rows)
    res["verdict"] = verdict(res)
    return res


def steps_check(rows: list[dict]) -> list[dict]:
    """Does each full-data-steps row take the steps its proxies took (same ratio and length)?"""
    out = []
    for r in rows:
        if r["arm"] != FULL_STEPS:
            continue
        proxies = [
            x
            for x in rows
            if x["ratio"] == r["ratio"] and x["length"] == r["length"] and x is not r
        ]
        proxy_steps = sorted({s for x in proxies for s in x["steps"]})
        out.append(
            {
                "ratio": r["ratio"],
                "length": r["length"],
                "full_steps": r["steps"],
                "proxy_steps": proxy_steps,
                "matched": set(r["steps"]) <= set(proxy_steps) if proxy_steps else None,
            }
        )
    return out


def comparisons(rows: list[dict], main: str) -> list[dict]:
    out = []
    for r in rows:
        if r["arm"] != main:
            continue
        mine = {p["seed"]: p for p in r["per_seed"]}
        for b in rows:
            if b["arm"] == main or b["ratio"] != r["ratio"] or b["length"] != r["length"]:
                continue
            theirs = {p["seed"]: p for p in b["per_seed"]}
            seeds = sorted(set(mine) & set(theirs))
            comp = {"ratio": r["ratio"], "length": r["length"], "against": b["arm"], "seeds": seeds}
            for key, _ in METRICS:
                comp[key] = stats.paired_test(
                    [mine[s][key] for s in seeds], [theirs[s][key] for s in seeds]
                )
            out.append(comp)
    return out


def find(rows: list[dict], arm: str, ratio: float, length: str) -> dict | None:
    return next(
        (r for r in rows if r["arm"] == arm and r["ratio"] == ratio and r["length"] == length),
        None,
    )


def goals(res: dict) -> list[dict]:
    """The issue's goals, measured (never tuned toward): main arm against random at 5%."""
    out = []
    main = res["main_arm"]
    comps = {(c["ratio"], c["length"], c["against"]): c for c in res["comparisons"]}
    c = comps.get((0.05, PAPER, "random"))
    if c:
        for key, label, sign in (
            ("kendall_top", "top-half tau", 1),
            ("regret_points", "regret", -1),
        ):
            t = c[key]
            ok = t["mean"] is not None and t["mean"] * sign > 0 and (t["p_permutation"] or 1) < 0.05
            out.append(
                {
                    "goal": f"{main} ahead of random on {label} at 5% (paper length), p < 0.05, "
                    ">= 10 seeds",
                    "measured": f"difference {t['mean']:+.3f} [{t['lo']:.3f}, {t['hi']:.3f}], "
                    f"p = {t['p_permutation']:.3g} (sign-flip), {t['p_wilcoxon']:.3g} (Wilcoxon), "
                    f"{t['pairs']} seeds"
                    if t["mean"] is not None and t["p_permutation"] is not None
                    else "undefined",
                    "met": bool(ok and t["pairs"] >= 10),
                }
            )
    worst = None
    for comp in res["comparisons"]:
        if comp["against"] != "random" or comp["kendall_all"]["mean"] is None:
            continue
        d = comp["kendall_all"]["mean"]
        if worst is None or d < worst[0]:
            worst = (d, comp["ratio"], comp["length"])
    if worst:
        out.append(
            {
                "goal": f"tau over all candidates never more than 0.02 below random ({main})",
                "measured": f"worst mean difference {worst[0]:+.3f} "
                f"({100 * worst[1]:g}%, {worst[2]})",
                "met": worst[0] >= -0.02,
            }
        )
    row = find(res["rows"], main, 0.05, PAPER)
    ceil = res["reference"].get("ceiling_evaluation", {}).get("kendall_all")
    if row and row["summary"]["kendall_all"]["mean"] is not None:
        tau = row["summary"]["kendall_all"]["mean"]
        out.append(
            {
                "goal": "at 5%: tau >= 0.85 against the averaged reference, or within 0.05 of "
                "the ceiling",
                "measured": f"tau {tau:.3f}; ceiling {ceil:.3f}"
                if ceil is not None
                else f"tau {tau:.3f}; no ceiling",
                "met": tau >= 0.85 or (ceil is not None and tau >= ceil - 0.05),
            }
        )
    if row and res["reference"].get("search_passes"):
        n = len(res["configs"])
        full_per = res["reference"]["search_passes"] / n
        cand_per = row["cost"]["search_passes"] / n
        fixed = row["cost"]["end_to_end_passes"] - row["cost"]["search_passes"]  # probes, features
        here = row["cost"]["speedup_passes"]
        projected = full_per * 100 / (fixed + cand_per * 100)
        out.append(
            {
                "goal": f"end to end at 5%, probes counted: >= 3.5x for {n} configurations and "
                ">= 12x projected for 100",
                "measured": f"{here:.1f}x for {n}; {projected:.1f}x for 100 (probes and features "
                "paid once, candidates at this space's mean cost)",
                "met": bool(here >= 3.5 and projected >= 12),
            }
        )
    return out


def pareto(rows: list[dict]) -> list[dict]:
    """Rows no other row beats on both cost (image passes, end to end) and mean tau (all)."""
    pts = [
        (r["cost"]["end_to_end_passes"], r["summary"]["kendall_all"]["mean"], r)
        for r in rows
        if r["summary"]["kendall_all"]["mean"] is not None
    ]
    front = []
    for c, t, r in sorted(pts, key=lambda p: (p[0], -p[1])):
        if not front or t > front[-1]["kendall_all"]:
            front.append(
                {
                    "arm": r["arm"],
                    "ratio": r["ratio"],
                    "length": r["length"],
                    "end_to_end_passes": c,
                    "kendall_all": t,
                }
            )
    return front


def verdict(res: dict) -> str:
    """One plain sentence: the main arm against random at 5%, paper length."""
    main = res["main_arm"]
    name = planmod.stem(res["space"])
    c = next(
        (
            x
            for x in res["comparisons"]
            if x["ratio"] == 0.05 and x["length"] == PAPER and x["against"] == "random"
        ),
        None,
    )
    if not c or c["kendall_top"]["p_permutation"] is None:
        return f"{name}: not enough paired seeds at 5% for a verdict."
    parts = []
    for key, label, sign in (
        ("kendall_top", "top-half tau", 1),
        ("regret_points", "regret", -1),
        ("kendall_all", "tau over all candidates", 1),
    ):
        t = c[key]
        if t["mean"] is None:
            parts.append(f"{label} undefined")
            continue
        p = t["p_permutation"]
        if t.get("all_equal"):
            parts.append(f"equal to random on {label} in every seed (difference {t['mean']:+.3g})")
            continue
        if p < 0.05:
            word = "ahead of" if t["mean"] * sign > 0 else "behind"
        else:
            word = "not distinguishable from"
        unit = " pts" if key == "regret_points" else ""
        parts.append(
            f"{word} random on {label} ({t['mean']:+.3f}{unit}, p = {p:.2g}, "
            f"MDE {t['mde']:.3f}{unit})"
        )
    return (
        f"{name}, 5% proxies at the paper's length, {len(c['seeds'])} paired seeds: "
        f"{main} (per-class draw) is " + "; ".join(parts) + "."
    )


def sittings(events: list[dict]) -> list[tuple[str, str]]:
    """(start, end) UTC of each `run` call on the run folder (each begins with a sitting event)."""
    spans: list[list[str]] = []
    for e in events:
        if "time" not in e:
            continue
        if e.get("kind") == "sitting" or not spans:
            spans.append([e["time"], e["time"]])
        else:
            spans[-1][1] = e["time"]
    return [(a, b) for a, b in spans]


def analyse_run(run_dir: Path, out_dir: Path, binary: Path) -> Path:
    """Analyses a run folder; writes ranking_<tier>_<stamp>.{json,md}, the _latest and _summary
    markdown and one plot per space into out_dir (the run folder for unpublished tiers)."""
    import datetime as dt

    import plots
    import tables
    from util import now_utc

    plan_doc = json.loads((run_dir / "plan.json").read_text())
    tier_name = plan_doc["tier"]
    tier = Tier.from_dict(plan_doc["tier_settings"])
    if not tier.publish:
        out_dir = run_dir
    runner = Runner(tier, tier_name, run_dir, binary, data_root=plan_doc["data_root"])
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M")
    events = read_jsonl(run_dir / "events.jsonl")
    loads = [e["load_average"][0] for e in events if e.get("load_average")]
    ran = {e.get("unit") for e in events if e.get("kind") in ("reference", "proxy", FULL_STEPS)}
    doc = {
        "tier": tier_name,
        "written": now_utc(),
        "run_dir": rel(run_dir),
        "analysed_at": git_commit(),
        "plan": plan_doc,
        "load": {"mean": sum(loads) / len(loads), "max": max(loads)} if loads else None,
        "sittings": sittings(events),
        "skipped": sorted(
            {e["unit"] for e in events if e.get("kind") == "skipped" and e["unit"] not in ran}
        ),
        "statistics": {
            "bootstrap_resamples": stats.BOOTSTRAP_RESAMPLES,
            "bootstrap_seed": stats.BOOTSTRAP_SEED,
            "level": stats.CI_LEVEL,
            "permutation": f"sign-flip, exact up to {stats.PERMUTATION_EXACT_MAX} pairs",
            "power": stats.POWER,
        },
        "spaces": [],
    }
    md_path = out_dir / f"ranking_{tier_name}_{stamp}.md"
    doc["results_md"] = rel(md_path)
    md = tables.header(doc)
    for plan in tier.spaces:
        res = analyse_space(runner, plan, tier)
        plot_name = None
        if res.get("rows"):
            plot_path = out_dir / f"ranking_{tier_name}_{planmod.stem(plan.space)}_tau_vs_cost.png"
            plots.tau_vs_cost(res, plot_path)
            res["plot"] = rel(plot_path)
            plot_name = plot_path.name
        doc["spaces"].append(res)
        md.append(tables.space_markdown(res, plot_name))
    json_path = out_dir / f"ranking_{tier_name}_{stamp}.json"
    json_path.write_text(json.dumps(doc, indent=1, default=float) + "\n")
    md_path.write_text("\n".join(md) + "\n")
    (out_dir / f"ranking_{tier_name}_latest.md").write_text("\n".join(md) + "\n")
    (out_dir / f"ranking_{tier_name}_summary.md").write_text(tables.summary_markdown(doc))
    return md_path
