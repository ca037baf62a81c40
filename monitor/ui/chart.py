"""Mentions per actor per day as an inline SVG line chart, drawn on the server: the page
needs no script and no chart library fetched from elsewhere, so it works offline and behind
a proxy that allows nothing but the view itself."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from html import escape

from monitor.models import Mentions

TOP_ACTORS = 8
WIDTH, HEIGHT = 760, 300
LEFT, RIGHT, TOP, BOTTOM = 40, 170, 12, 40
COLOURS = (
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
)  # fmt: skip


def mentions_svg(mentions: Sequence[Mentions], top: int = TOP_ACTORS) -> str:
    """A line per actor (the `top` most mentioned), one point per day; "" when empty."""
    if not mentions:
        return ""
    days = sorted({m.day for m in mentions})
    totals: dict[str, int] = defaultdict(int)
    counts: dict[tuple[str, str], int] = {}
    for m in mentions:
        totals[m.actor] += m.items
        counts[(m.actor, m.day)] = m.items
    actors = sorted(totals, key=lambda a: (-totals[a], a))[:top]
    peak = max(counts[(a, d)] for a in actors for d in days if (a, d) in counts)
    x = _scale(len(days), LEFT, WIDTH - RIGHT)
    y = lambda n: HEIGHT - BOTTOM - (HEIGHT - TOP - BOTTOM) * n / peak  # noqa: E731
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="mentions-chart" width="{WIDTH}" '
        f'height="{HEIGHT}" role="img" aria-label="Mentions per actor per day">',
        _axes(days, peak, x, y),
    ]
    for index, actor in enumerate(actors):
        colour = COLOURS[index % len(COLOURS)]
        points = " ".join(f"{x(i):.1f},{y(counts.get((actor, d), 0)):.1f}"
                          for i, d in enumerate(days))  # fmt: skip
        parts.append(
            f'<polyline data-actor="{escape(actor)}" fill="none" stroke="{colour}" '
            f'stroke-width="2" points="{points}"><title>{escape(actor)}: {totals[actor]} '
            "items</title></polyline>"
        )
        legend_y = TOP + 16 * index + 10
        parts.append(
            f'<text x="{WIDTH - RIGHT + 12}" y="{legend_y}" fill="{colour}" font-size="12">'
            f"{escape(actor)} ({totals[actor]})</text>"
        )
    parts.append("</svg>")
    return "\n".join(parts)


def _scale(count: int, low: float, high: float):  # type: ignore[no-untyped-def]
    if count == 1:
        return lambda i: (low + high) / 2
    return lambda i: low + (high - low) * i / (count - 1)


def _axes(days: list[str], peak: int, x, y) -> str:  # type: ignore[no-untyped-def]
    bottom = HEIGHT - BOTTOM
    lines = [
        f'<line x1="{LEFT}" y1="{bottom}" x2="{WIDTH - RIGHT}" y2="{bottom}" stroke="#888"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}" stroke="#888"/>',
        f'<text x="{LEFT - 6}" y="{y(peak) + 4:.1f}" font-size="11" text-anchor="end">{peak}'
        "</text>",
        f'<text x="{LEFT - 6}" y="{bottom + 4}" font-size="11" text-anchor="end">0</text>',
    ]
    step = max(1, len(days) // 6)  # at most about six dates under the axis
    for i in range(0, len(days), step):
        lines.append(
            f'<text x="{x(i):.1f}" y="{bottom + 16}" font-size="11" text-anchor="middle">'
            f"{escape(days[i])}</text>"
        )
    return "\n".join(lines)
