"""Markdown from the analysed numbers: the full results file, and the short summary (verdict per
space, best ranking per unit of cost) that the top-level README is updated from."""

from __future__ import annotations

from pathlib import Path

import plan as planmod
from plan import FULL_STEPS


def convergence_text(conv: dict, epochs: int, n_configs: int) -> str:
    """The convergence check in one sentence; a check still training says how far it got."""
    n = conv.get("configs_checked", n_configs)
    if n == 0:
        return f"Convergence check (seed {conv['seed']}, {conv['epochs']} epochs): not trained yet."
    so_far = "" if conv.get("complete", True) else f", {n} of {n_configs} configurations so far"
    text = (
        f"Convergence check (seed {conv['seed']}, {conv['epochs']} against {epochs} epochs"
        f"{so_far}): {conv['within_1_point']}/{n} within 1 point, largest change "
        f"{conv['max_abs_points']:.1f} points, mean {conv['mean_points']:+.2f}"
    )
    if conv.get("kendall") is not None:
        text += f"; tau between the two {fmt(conv['kendall'])}"
    if not conv.get("complete", True):
        return text + ": pending."
    return text + (": met." if conv["met"] else ": **not met** (not fully converged).")


def fmt(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def fmt_ci(s: dict, digits: int = 3) -> str:
    if s.get("mean") is None:
        return "undefined"
    text = f"{s['mean']:.{digits}f}"
    if s["n"] > 1:
        text += f" [{s['lo']:.{digits}f}, {s['hi']:.{digits}f}]"
    if s.get("undefined"):
        text += f" ({s['undefined']} undef.)"
    return text


def fmt_p(p: float | None) -> str:
    return "n/a" if p is None else f"{p:.2g}"


def passes(x: float) -> str:
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e3:
        return f"{x / 1e3:.0f}k"
    return f"{x:.0f}"


def arm_label(arm: str, main: str) -> str:
    if arm == main:
        return f"{arm} (per class)"
    if arm == FULL_STEPS:
        return "full data, fewer steps"
    return arm


def header(doc: dict) -> list[str]:
    p = doc["plan"]
    t = p["tier_settings"]
    out = [f"# Ranking benchmark (second edition), tier {doc['tier']} ({doc['written'][:10]})", ""]
    out.append(
        f"Run folder `{doc['run_dir']}`, started at commit {p['git']['commit'][:12]}"
        f"{' (with uncommitted changes)' if p['git']['dirty'] else ''}, binary "
        f"`{p['binary']}` (SHA-256 {p.get('binary_sha256', '?')[:12]}), analysed at commit "
        f"{doc.get('analysed_at', {}).get('commit', '?')[:12]}; machine "
        f"{p['machine']['cpu']} x {p['machine']['cores']} cores, {p['machine']['dataproxy']}. "
        f"Dataset {t['dataset']} (train slice {t['max_train'] or 'all'}, test slice "
        f"{t['max_test'] or 'all'}), {t['jobs']} training(s) at a time with {t['threads']} "
        f"thread(s) each, device {t['device']}. Reference seeds {t['reference_seeds']} "
        f"(convergence check: seed {t['convergence_seed']} at twice the epochs); selection split "
        f"{t['selection_split']} ({t['selection_fraction']:g} of each class's test samples select, "
        f"the rest rank). Methods from `dataproxy methods --json`: "
        + ", ".join(m["name"] for m in p.get("methods", []))
        + f"; arms compared: {', '.join(a['name'] for a in p.get('arms', []))}. "
        f"Started {p['started']}"
        + (f", deadline {p['deadline']} UTC." if p.get("deadline") else ".")
    )
    out.append("")
    if doc.get("load"):
        ld = doc["load"]
        out.append(
            f"Machine load (1-minute average at each step): mean {ld['mean']:.1f}, max "
            f"{ld['max']:.1f} on {p['machine']['cores']} cores. Seconds were measured on a machine "
            "shared with other builds: compare methods in image passes (machine independent); "
            "seconds are indicative."
        )
        out.append("")
    if doc.get("sittings"):
        out.append(
            f"Sittings: {len(doc['sittings'])} ("
            + "; ".join(f"{a} to {b}" for a, b in doc["sittings"])
            + ")."
        )
        out.append("")
    if doc.get("skipped"):
        out.append("Not run (deadline): " + "; ".join(doc["skipped"]) + ".")
        out.append("")
    return out


def reference_section(res: dict) -> list[str]:
    ref = res["reference"]
    ids = res["configs"]
    out = [f"## {res['space']}", ""]
    if not res.get("evidence", True):
        out += ["(Not evidence for the verdict: see benchmarks/ranking/README.md.)", ""]
    if "accuracy_mean" not in ref:
        return out + ["No complete reference yet.", ""]
    out.append(
        f"### Reference: full data, {ref['epochs']} epochs, mean over training seeds "
        f"{ref['seeds']} ({', '.join(f'`{d}`' for d in ref['dirs'])})"
    )
    out.append("")
    out.append("| configuration | " + " | ".join(ids) + " |")
    out.append("|---" * (len(ids) + 1) + "|")
    out.append("| mean (%) | " + " | ".join(f"{100 * a:.1f}" for a in ref["accuracy_mean"]) + " |")
    if ref.get("accuracy_sd"):
        out.append(
            "| SD (pts) | " + " | ".join(f"{100 * a:.2f}" for a in ref["accuracy_sd"]) + " |"
        )
    conv = ref.get("convergence")
    if conv and conv.get("configs_checked", 1):
        out.append(
            f"| {conv['epochs']} epochs, seed {conv['seed']} minus {ref['epochs']} epochs (pts) | "
            + " | ".join("n/a" if d is None else f"{d:+.1f}" for d in conv["diff_points"])
            + " |"
        )
    out.append("")
    ct = ref["ceiling_test"]
    ce = ref.get("ceiling_evaluation", {})
    out.append(
        f"Reference noise (the ceiling): each training seed against the mean of the others, tau "
        f"{', '.join(fmt(p['kendall_all']) for p in ct['per_seed'])} on the whole test slice "
        f"(mean {fmt(ct['kendall_all'])}; top half {fmt(ct['kendall_top'])}); on the proxy seeds' "
        f"evaluation splits (half the samples): mean tau {fmt(ce.get('kendall_all'))}, top half "
        f"{fmt(ce.get('kendall_top'))}. Full-data search: {passes(ref['search_passes'])} image "
        f"passes, {ref['search_seconds']:.0f} s of training per seed."
    )
    if conv:
        out.append(convergence_text(conv, ref["epochs"], len(ids)))
    if ref.get("missing"):
        out.append(
            "Missing reference trainings: "
            + ", ".join(
                f"seed {m['seed']} ({m['epochs']} epochs, {m['role']})" for m in ref["missing"]
            )
            + "."
        )
    out.append("")
    return out


def space_markdown(res: dict, plot_name: str | None) -> str:
    out = reference_section(res)
    if not res.get("rows"):
        return "\n".join(out)
    main = res["main_arm"]
    ev = res.get("evaluation_split", {})
    sizes = sorted(set(ev.get("sizes", {}).values()))
    out.append(
        f"Every accuracy below is measured on each proxy seed's evaluation split ({sizes} test "
        "samples), disjoint from the samples importance was computed on; the reference accuracy "
        "for a seed is the mean over reference seeds on that same split."
        + (f" Split mismatch between arms: {ev['mismatch']}." if ev.get("mismatch") else "")
    )
    out.append("")
    out.append("### Ranking against the averaged reference: mean [95% bootstrap CI over seeds]")
    out.append("")
    out.append(
        "| method | ratio | length (epochs) | steps | seeds | tau (all) | tau (top half) "
        "| Spearman (all) | regret (pts) | top-1 kept | end to end (image passes) | end to end (s) "
        "| speedup (passes) |"
    )
    out.append("|---" * 13 + "|")
    for r in res["rows"]:
        s, c = r["summary"], r["cost"]
        steps = r["steps"]
        st = f"{steps[0]}" if len(steps) == 1 else f"{steps[0]}-{steps[-1]}" if steps else "?"
        out.append(
            f"| {arm_label(r['arm'], main)} | {100 * r['ratio']:g}% "
            f"| {r['length']} ({r['epochs']}) | {st} | {len(r['seeds'])} "
            f"| {fmt_ci(s['kendall_all'])} | {fmt_ci(s['kendall_top'])} "
            f"| {fmt_ci(s['spearman_all'])} | {fmt_ci(s['regret_points'], 2)} "
            f"| {s['top1_kept']}/{len(r['seeds'])} | {passes(c['end_to_end_passes'])} "
            f"| {c['end_to_end_seconds']:.0f} | {c['speedup_passes']:.1f}x |"
        )
    out.append("")
    out.append(
        f"Costs: end to end = the candidates' training (image passes: `samples_seen`) + for "
        f"{main}: probes ({passes(res['probes']['passes'])} passes, "
        f"{res['probes']['seconds']:.0f} s) and their feature pass (a forward pass counted as "
        f"1/3 of a training pass: {passes(res['probes']['feature_passes'])}; "
        f"{res['probes']['feature_seconds']:.1f} s) + selection (seconds only). The full data with "
        "fewer steps pays no selection. Speedup = one full-data search / end to end."
    )
    out.append("")
    if res["comparisons"]:
        out.append(
            f"### {main} (per class) minus each alternative, paired by seed: mean [95% bootstrap "
            "CI], p (sign-flip permutation, exact) / p (Wilcoxon signed-rank), MDE (80% power)"
        )
        out.append("")
        out.append(
            "| ratio | length | against | seeds | d tau (all) | p | MDE | d tau (top half) | p "
            "| MDE | d regret (pts; < 0: better) | p | MDE |"
        )
        out.append("|---" * 13 + "|")
        for c in res["comparisons"]:
            cells = []
            for key, _ in (("kendall_all", 0), ("kendall_top", 0), ("regret_points", 0)):
                t = c[key]
                digits = 2 if key == "regret_points" else 3
                cells += [
                    fmt_ci(t, digits),
                    f"{fmt_p(t.get('p_permutation'))} / {fmt_p(t.get('p_wilcoxon'))}",
                    fmt(t.get("mde"), digits),
                ]
            out.append(
                f"| {100 * c['ratio']:g}% | {c['length']} | {arm_label(c['against'], main)} "
                f"| {len(c['seeds'])} | " + " | ".join(cells) + " |"
            )
        out.append("")
        out.append(
            "MDE: the smallest true mean difference this number of paired seeds would detect "
            "with 80% power at the 5% level, (z_0.975 + z_0.8) x SD of the paired differences / "
            "sqrt(seeds)."
        )
        out.append("")
    if res.get("steps_check"):
        bad = [s for s in res["steps_check"] if s["matched"] is False]
        out.append(
            "Steps matched (full data with fewer steps against the proxies of the same ratio and "
            "length): "
            + (
                "yes, every row."
                if not bad
                else "**no** at "
                + ", ".join(
                    f"{100 * s['ratio']:g}% {s['length']} (full {s['full_steps']}, proxies "
                    f"{s['proxy_steps']})"
                    for s in bad
                )
            )
        )
        out.append("")
    if res.get("goals"):
        out.append("### The issue's goals (measured, not tuned toward)")
        out.append("")
        out.append("| goal | measured | met |")
        out.append("|---|---|---|")
        for g in res["goals"]:
            out.append(f"| {g['goal']} | {g['measured']} | {'yes' if g['met'] else '**no**'} |")
        out.append("")
    out.append(f"**Verdict.** {res['verdict']}")
    out.append("")
    out.append(
        "Best ranking for its cost (the rows no other row beats on both end-to-end image passes "
        "and mean tau over all candidates): "
        + "; ".join(
            f"{arm_label(p['arm'], main)} {100 * p['ratio']:g}% {p['length']} "
            f"({passes(p['end_to_end_passes'])} passes, tau {p['kendall_all']:.3f})"
            for p in res["pareto"]
        )
        + "."
    )
    out.append("")
    if plot_name:
        out.append(f"![tau against cost]({plot_name})")
        out.append("")
    return "\n".join(out)


def best_at_each_cost(res: dict) -> list[str]:
    """Per ratio and length, the arm with the highest mean tau (all) and its cost."""
    out = []
    groups: dict[tuple, list[dict]] = {}
    for r in res["rows"]:
        groups.setdefault((r["ratio"], r["length"]), []).append(r)
    for (ratio, length), rows in groups.items():
        rows = [r for r in rows if r["summary"]["kendall_all"]["mean"] is not None]
        if not rows:
            continue
        best = max(rows, key=lambda r: r["summary"]["kendall_all"]["mean"])
        out.append(
            f"{100 * ratio:g}% {length}: {arm_label(best['arm'], res['main_arm'])} "
            f"(tau {best['summary']['kendall_all']['mean']:.3f}, "
            f"{passes(best['cost']['end_to_end_passes'])} passes)"
        )
    return out


def summary_markdown(doc: dict) -> str:
    p = doc["plan"]
    out = [
        f"# Ranking benchmark (second edition), tier {doc['tier']}: summary "
        f"({doc['written'][:10]}, commit {p['git']['commit'][:12]})",
        "",
        f"Full tables: `{doc['results_md']}`. Seeds: proxies "
        + ", ".join(
            f"{planmod.stem(s['space'])} "
            f"{sorted({x for r in s.get('rows', []) for x in r['seeds']})}"
            for s in doc["spaces"]
        )
        + f"; reference seeds {p['tier_settings']['reference_seeds']}.",
        "",
    ]
    for s in doc["spaces"]:
        if "rows" not in s or not s["rows"]:
            out.append(f"- {planmod.stem(s['space'])}: no results yet.")
            continue
        tag = "" if s.get("evidence", True) else " (not evidence)"
        ref = s["reference"]
        out.append(f"## {planmod.stem(s['space'])}{tag}")
        out.append("")
        out.append(f"**Verdict.** {s['verdict']}")
        out.append("")
        ce = ref.get("ceiling_evaluation", {})
        out.append(
            f"Reference: mean of {len(ref['seeds'])} full-data seeds; its own noise (ceiling) tau "
            f"{fmt(ref['ceiling_test']['kendall_all'])} on the test slice, "
            f"{fmt(ce.get('kendall_all'))} on the evaluation splits."
            + (
                " " + convergence_text(ref["convergence"], ref["epochs"], len(ref["accuracy_mean"]))
                if ref.get("convergence")
                else ""
            )
        )
        out.append("")
        out.append(
            "| method | ratio | length | seeds | tau (all) | tau (top half) | regret (pts) "
            "| end to end (image passes) | speedup |"
        )
        out.append("|---" * 9 + "|")
        for r in s["rows"]:
            sm = r["summary"]
            out.append(
                f"| {arm_label(r['arm'], s['main_arm'])} | {100 * r['ratio']:g}% | {r['length']} "
                f"| {len(r['seeds'])} | {fmt_ci(sm['kendall_all'], 2)} "
                f"| {fmt_ci(sm['kendall_top'], 2)} | {fmt_ci(sm['regret_points'], 2)} "
                f"| {passes(r['cost']['end_to_end_passes'])} | {r['cost']['speedup_passes']:.1f}x |"
            )
        out.append("")
        out.append("Best tau at each ratio and length: " + "; ".join(best_at_each_cost(s)) + ".")
        out.append("")
        out.append(
            "Best ranking per unit of cost (no other row has a higher tau for less): "
            + "; ".join(
                f"{arm_label(x['arm'], s['main_arm'])} {100 * x['ratio']:g}% {x['length']} "
                f"(tau {x['kendall_all']:.2f} for {passes(x['end_to_end_passes'])} passes)"
                for x in s["pareto"]
            )
            + "."
        )
        out.append("")
        for g in s.get("goals", []):
            out.append(f"- {g['goal']}: {g['measured']} -- {'met' if g['met'] else 'not met'}.")
        out.append("")
        if s.get("plot"):
            out.append(f"![tau against cost]({Path(s['plot']).name})")
            out.append("")
    return "\n".join(out) + "\n"
