"""Ranking metrics, bootstrap intervals, paired tests and detectable differences of the ranking
benchmark.

Everything here is pure: it takes accuracies and seconds, and returns numbers. analyse.py feeds
it the records that `dataproxy evaluate` and `dataproxy generate` wrote.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats as sps

BOOTSTRAP_RESAMPLES = 10000
BOOTSTRAP_SEED = 12345
CI_LEVEL = 0.95
PERMUTATION_EXACT_MAX = 16  # exact sign-flip test up to 2**16 sign patterns
PERMUTATION_RESAMPLES = 100000
POWER = 0.8


def _finite(x: float) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def correlations(full: list[float], proxy: list[float]) -> dict:
    """Kendall tau-b, Spearman rho and Pearson r of proxy against full accuracies.

    A coefficient is None (undefined) when either side is constant, e.g. every candidate at
    chance level on a tiny proxy: there is no ranking to compare then.
    """
    a = np.asarray(full, dtype=float)
    b = np.asarray(proxy, dtype=float)
    out = {"n": len(a)}
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        out.update(kendall=None, spearman=None, pearson=None)
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out["kendall"] = float(sps.kendalltau(a, b, variant="b").statistic)
        out["spearman"] = float(sps.spearmanr(a, b).statistic)
        out["pearson"] = float(sps.pearsonr(a, b).statistic)
    for k in ("kendall", "spearman", "pearson"):
        if not _finite(out[k]):
            out[k] = None
    return out


def proxy_picks(proxy: list[float]) -> list[int]:
    """The candidates a user would pick from the proxy: those sharing the best proxy accuracy."""
    best = max(proxy)
    return [i for i, p in enumerate(proxy) if p == best]


def ranking_metrics(full: list[float], proxy: list[float], top_fraction: float = 0.5) -> dict:
    """All per-seed metrics of one proxy ranking against the full-data ranking.

    Accuracies are fractions; regret is in accuracy points (percent).
    """
    n = len(full)
    order = sorted(range(n), key=lambda i: (-full[i], i))
    top = sorted(order[: max(2, int(round(n * top_fraction)))])
    m = {"all": correlations(full, proxy)}
    m["top"] = correlations([full[i] for i in top], [proxy[i] for i in top])
    m["top"]["members"] = top
    # As in dataproxy/stats.h: a tie for first is worth the mean of the tied candidates, so a
    # proxy that cannot tell them apart gets no credit for a lucky tie-break.
    picks = proxy_picks(proxy)
    best = order[0]
    pick_full = sum(full[i] for i in picks) / len(picks)
    m["regret_points"] = 100.0 * (full[best] - pick_full)
    m["top1_kept"] = bool(all(full[i] == full[best] for i in picks))
    m["picks"] = picks
    return m


def bootstrap_mean(values: list[float | None], seed: int = BOOTSTRAP_SEED) -> dict:
    """Mean over seeds with a percentile bootstrap interval (resampling the seeds).

    Undefined values are left out and counted. With one value the interval is that value.
    """
    v = np.asarray([x for x in values if x is not None], dtype=float)
    out = {"n": int(len(v)), "undefined": int(len(values) - len(v))}
    if len(v) == 0:
        out.update(mean=None, lo=None, hi=None, values=[])
        return out
    out["values"] = [float(x) for x in v]
    out["mean"] = float(v.mean())
    if len(v) == 1:
        out["lo"] = out["hi"] = float(v[0])
        return out
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(v), size=(BOOTSTRAP_RESAMPLES, len(v)))
    means = v[idx].mean(axis=1)
    alpha = (1 - CI_LEVEL) / 2
    out["lo"] = float(np.quantile(means, alpha))
    out["hi"] = float(np.quantile(means, 1 - alpha))
    return out


def bootstrap_difference(a: list[float | None], b: list[float | None]) -> dict:
    """Mean of a - b over seeds where both are defined, paired by seed, with its interval."""
    pairs = [x - y for x, y in zip(a, b) if x is not None and y is not None]
    return bootstrap_mean(pairs)


def intervals_overlap(a: dict, b: dict) -> bool | None:
    if a.get("lo") is None or b.get("lo") is None or a["n"] < 2 or b["n"] < 2:
        return None  # one seed has no interval
    return not (a["hi"] < b["lo"] or b["hi"] < a["lo"])


def projected_speedup(
    n: int, full_per_config: float, proxy_per_config: float, fixed: float
) -> float | None:
    """End-to-end speedup of an n-candidate search from measured per-candidate costs.

    fixed: one-off costs that do not grow with the candidates (probes, features, selection).
    """
    denominator = fixed + n * proxy_per_config
    if denominator <= 0:
        return None
    return n * full_per_config / denominator


def paired_test(a: list[float | None], b: list[float | None]) -> dict:
    """a - b paired by seed (pairs with an undefined side are left out): mean, 95% bootstrap
    interval, the sign-flip permutation test of the mean (exact up to 16 pairs; two-sided),
    Wilcoxon's signed-rank test (SciPy, zeros dropped as Wilcoxon did), the paired SD and the
    minimum detectable difference at 80% power, MDE = (z_0.975 + z_0.8) * sd / sqrt(n)."""
    d = np.asarray([x - y for x, y in zip(a, b) if x is not None and y is not None], dtype=float)
    out = bootstrap_mean(list(d))
    out["pairs"] = int(len(d))
    out["dropped"] = int(len(a) - len(d))
    if len(d) < 2:
        out.update(sd=None, mde=None, p_permutation=None, p_wilcoxon=None)
        return out
    sd = float(d.std(ddof=1))
    z = sps.norm.ppf(1 - (1 - CI_LEVEL) / 2) + sps.norm.ppf(POWER)
    out["sd"] = sd
    # Every pair equal (e.g. both arms keep the best candidate in every seed: regret 0 - 0): no
    # spread, no detectable difference to state.
    out["all_equal"] = bool(np.all(d == d[0]))
    out["mde"] = None if sd == 0 else float(z * sd / math.sqrt(len(d)))
    out["p_permutation"] = sign_flip_p(d)
    nonzero = d[d != 0]
    if len(nonzero) == 0:
        out["p_wilcoxon"] = 1.0
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out["p_wilcoxon"] = float(sps.wilcoxon(nonzero).pvalue)
    return out


def sign_flip_p(d: np.ndarray) -> float:
    """Two-sided p-value of the paired mean under random signs (the permutation test for paired
    data): exact enumeration up to PERMUTATION_EXACT_MAX pairs, else Monte Carlo."""
    n = len(d)
    observed = abs(d.mean())
    if n <= PERMUTATION_EXACT_MAX:
        codes = np.arange(2**n, dtype=np.int64)[:, None]
        signs = 1 - 2 * ((codes >> np.arange(n)) & 1)
    else:
        rng = np.random.default_rng(BOOTSTRAP_SEED)
        signs = rng.choice((-1, 1), size=(PERMUTATION_RESAMPLES, n))
    means = np.abs((signs * d).mean(axis=1))
    return float(np.mean(means >= observed - 1e-12))


def ceiling(accuracies: list[list[float]]) -> dict:
    """The reference's own noise: each training seed's ranking against the mean of the others
    (tau over all candidates and over the top half, regret). Its mean is the ceiling: the
    agreement a perfect proxy, itself one training seed, could expect with the averaged
    reference."""
    per_seed = []
    k = len(accuracies)
    if k < 2:
        return {"per_seed": [], "kendall_all": None, "kendall_top": None, "regret_points": None}
    for i in range(k):
        others = np.mean([accuracies[j] for j in range(k) if j != i], axis=0)
        m = ranking_metrics([float(x) for x in others], [float(x) for x in accuracies[i]])
        per_seed.append(
            {
                "kendall_all": m["all"]["kendall"],
                "kendall_top": m["top"]["kendall"],
                "spearman_all": m["all"]["spearman"],
                "regret_points": m["regret_points"],
                "top1_kept": m["top1_kept"],
            }
        )

    def mean(key: str) -> float | None:
        v = [p[key] for p in per_seed if p[key] is not None]
        return float(np.mean(v)) if v else None

    return {
        "per_seed": per_seed,
        "kendall_all": mean("kendall_all"),
        "kendall_top": mean("kendall_top"),
        "spearman_all": mean("spearman_all"),
        "regret_points": mean("regret_points"),
    }
