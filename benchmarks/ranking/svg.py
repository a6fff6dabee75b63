"""A small scatter plot with error bars, written as SVG by hand (no plotting library needed)."""

from __future__ import annotations

import math
from html import escape

WIDTH, HEIGHT = 760, 460
LEFT, RIGHT, TOP, BOTTOM = 70, 200, 40, 60


def _ticks_log(lo: float, hi: float) -> list[float]:
    ticks = []
    for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        for m in (1, 2, 5):
            t = m * 10.0**e
            if lo <= t <= hi:
                ticks.append(t)
    return ticks


def _fmt_seconds(s: float) -> str:
    if s >= 3600:
        return f"{s / 3600:.3g} h"
    if s >= 60:
        return f"{s / 60:.3g} min"
    return f"{s:.3g} s"


def scatter(
    title: str,
    series: list[dict],
    x_label: str,
    y_label: str,
    vlines: list[tuple[float, str]] = (),
    hlines: list[tuple[float, str]] = (),
    y_range: tuple[float, float] = (-0.2, 1.0),
) -> str:
    """A log-x scatter with error bars.

    series: [{"name", "color", "marker", "points": [{"x", "y", "lo", "hi", "label"}]}].
    """
    xs = [p["x"] for s in series for p in s["points"] if p["x"] > 0]
    xs += [v for v, _ in vlines if v > 0]
    if not xs:
        xs = [1.0, 10.0]
    x_lo, x_hi = min(xs) / 1.5, max(xs) * 1.5
    y_lo, y_hi = y_range
    for s in series:
        for p in s["points"]:
            for key in ("y", "lo", "hi"):
                if p.get(key) is not None:
                    y_lo = min(y_lo, p[key] - 0.05)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def sx(x: float) -> float:
        return LEFT + plot_w * (math.log10(x) - math.log10(x_lo)) / (
            math.log10(x_hi) - math.log10(x_lo)
        )

    def sy(y: float) -> float:
        return TOP + plot_h * (y_hi - y) / (y_hi - y_lo)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{WIDTH / 2}" y="22" text-anchor="middle" font-size="14">{escape(title)}</text>',
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" '
        'stroke="#444"/>',
    ]
    for t in _ticks_log(x_lo, x_hi):
        x = sx(t)
        out.append(
            f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{TOP + plot_h}" stroke="#eee"/>'
        )
        out.append(
            f'<text x="{x:.1f}" y="{TOP + plot_h + 16}" text-anchor="middle">'
            f"{escape(_fmt_seconds(t))}</text>"
        )
    step = 0.1 if (y_hi - y_lo) <= 1.0 else 0.2
    y = math.ceil(y_lo / step) * step
    while y <= y_hi + 1e-9:
        py = sy(y)
        out.append(
            f'<line x1="{LEFT}" y1="{py:.1f}" x2="{LEFT + plot_w}" y2="{py:.1f}" stroke="#eee"/>'
        )
        out.append(f'<text x="{LEFT - 6}" y="{py + 4:.1f}" text-anchor="end">{y:.1f}</text>')
        y += step
    for value, label in vlines:
        if value <= 0:
            continue
        x = sx(value)
        out.append(
            f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{TOP + plot_h}" stroke="#888" '
            'stroke-dasharray="4,3"/>'
        )
        out.append(
            f'<text x="{x - 4:.1f}" y="{TOP + plot_h - 6}" text-anchor="end" fill="#555">'
            f"{escape(label)}</text>"
        )
    for value, label in hlines:
        py = sy(value)
        out.append(
            f'<line x1="{LEFT}" y1="{py:.1f}" x2="{LEFT + plot_w}" y2="{py:.1f}" stroke="#2ca02c" '
            'stroke-dasharray="6,3"/>'
        )
        out.append(f'<text x="{LEFT + 6}" y="{py - 4:.1f}" fill="#2ca02c">{escape(label)}</text>')
    out.append(
        f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 18}" text-anchor="middle">'
        f"{escape(x_label)}</text>"
    )
    out.append(
        f'<text x="18" y="{TOP + plot_h / 2}" text-anchor="middle" '
        f'transform="rotate(-90 18 {TOP + plot_h / 2})">{escape(y_label)}</text>'
    )
    for i, s in enumerate(series):
        color = s["color"]
        for p in s["points"]:
            if p.get("y") is None or p["x"] <= 0:
                continue
            x, yy = sx(p["x"]), sy(p["y"])
            if p.get("lo") is not None and p.get("hi") is not None:
                out.append(
                    f'<line x1="{x:.1f}" y1="{sy(p["lo"]):.1f}" x2="{x:.1f}" '
                    f'y2="{sy(p["hi"]):.1f}" stroke="{color}" stroke-width="1.5"/>'
                )
            marker = (
                f'<circle cx="{x:.1f}" cy="{yy:.1f}" r="4.5" fill="{color}"/>'
                if s.get("marker", "circle") == "circle"
                else f'<rect x="{x - 4:.1f}" y="{yy - 4:.1f}" width="8" height="8" fill="{color}"/>'
            )
            out.append(marker)
            if p.get("label"):
                out.append(
                    f'<text x="{x + 6:.1f}" y="{yy - 6:.1f}" fill="{color}" font-size="10">'
                    f"{escape(p['label'])}</text>"
                )
        ly = TOP + 10 + 20 * i
        lx = LEFT + plot_w + 16
        out.append(f'<rect x="{lx}" y="{ly}" width="10" height="10" fill="{color}"/>')
        out.append(f'<text x="{lx + 16}" y="{ly + 9}">{escape(s["name"])}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
