"""Kendall tau against end-to-end search cost, one plot per space with every method (matplotlib)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from plan import FULL_STEPS, PAPER  # noqa: E402

# Colours per benchmark arm name; an arm not listed gets the next colour of the cycle.
COLORS = {
    "importance": "#1f77b4",
    "importance-global": "#17becf",
    "random": "#d62728",
    "stratified": "#7f7f7f",
    FULL_STEPS: "#2ca02c",
}
MARKERS = {PAPER: "o", "long": "s"}


def tau_vs_cost(res: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(9, 5.5))
    arms = list(dict.fromkeys(r["arm"] for r in res["rows"]))
    cycle = iter(plt.rcParams["axes.prop_cycle"].by_key()["color"])
    for k, arm in enumerate(arms):
        color = COLORS.get(arm) or next(cycle)
        # Arms of the same cost would hide each other: each is drawn a little to the side.
        dodge = 1 + 0.025 * (k - (len(arms) - 1) / 2)
        rows = [r for r in res["rows"] if r["arm"] == arm]
        for length in dict.fromkeys(r["length"] for r in rows):
            pts = sorted(
                (
                    r
                    for r in rows
                    if r["length"] == length and r["summary"]["kendall_all"]["mean"] is not None
                ),
                key=lambda r: r["cost"]["end_to_end_passes"],
            )
            if not pts:
                continue
            x = [r["cost"]["end_to_end_passes"] * dodge for r in pts]
            y = [r["summary"]["kendall_all"]["mean"] for r in pts]
            lo = [
                r["summary"]["kendall_all"]["mean"] - r["summary"]["kendall_all"]["lo"] for r in pts
            ]
            hi = [
                r["summary"]["kendall_all"]["hi"] - r["summary"]["kendall_all"]["mean"] for r in pts
            ]
            label = arm + (" (per class)" if arm == res["main_arm"] else "")
            ax.errorbar(
                x,
                y,
                yerr=[lo, hi],
                color=color,
                marker=MARKERS.get(length, "^"),
                linestyle="-" if length == PAPER else ":",
                capsize=3,
                label=f"{label}, {length}",
            )
            for r, xi, yi in zip(pts, x, y):
                ax.annotate(
                    f"{100 * r['ratio']:g}%",
                    (xi, yi),
                    textcoords="offset points",
                    xytext=(4, -10),
                    fontsize=7,
                    color=color,
                )
    ref = res["reference"]
    ax.axvline(ref["search_passes"], color="black", linestyle="--", linewidth=1)
    ax.annotate(
        "one full-data search",
        (ref["search_passes"], 0.02),
        xycoords=("data", "axes fraction"),
        rotation=90,
        fontsize=8,
        ha="right",
    )
    if res["probes"]["passes"]:
        p = res["probes"]["passes"] + res["probes"]["feature_passes"]
        ax.axvline(p, color="#1f77b4", linestyle=":", linewidth=1)
        ax.annotate(
            "probes alone",
            (p, 0.02),
            xycoords=("data", "axes fraction"),
            rotation=90,
            fontsize=8,
            ha="right",
        )
    ceil = ref.get("ceiling_evaluation", {}).get("kendall_all")
    if ceil is not None:
        ax.axhline(ceil, color="black", linestyle="-.", linewidth=1)
        ax.annotate(
            "ceiling: one reference seed vs the mean of the others",
            (0.01, ceil),
            xycoords=("axes fraction", "data"),
            fontsize=8,
            va="bottom",
        )
    ax.set_xscale("log")
    ax.set_xlabel(
        "end-to-end search cost (training image passes, probes and features included; log;"
        " arms of equal cost drawn slightly apart)"
    )
    ax.set_ylabel("Kendall tau vs averaged reference (mean, 95% CI)")
    n = max((len(r["seeds"]) for r in res["rows"]), default=0)
    ax.set_title(f"{Path(res['space']).stem}: ranking against cost ({n} proxy seeds)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
