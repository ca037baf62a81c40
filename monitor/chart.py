"""The weekly view: a small PNG of mentions per actor per day, attached inline to digests that
cover several days. matplotlib is an optional extra (`pip install 'news-monitor[chart]'`,
about 80 MB with its dependencies): without it, digests go out without the chart."""

from __future__ import annotations

import io
import logging
from collections import Counter
from collections.abc import Iterable
from datetime import date, tzinfo
from typing import TYPE_CHECKING

from monitor.clock import from_iso
from monitor.models import StoredHit

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)
MAX_ACTORS = 6  # lines on the chart: more would not be told apart at this size
MIN_DAYS = 2  # a chart of one day says nothing the counts do not


def mentions(
    hits: Iterable[StoredHit], names: dict[str, str], tz: tzinfo
) -> dict[str, Counter[date]]:
    """Items mentioning each actor, per local day (the item's published day, else the day
    its hit was stored); an item counts once per actor whatever the rules that matched it."""
    seen: set[tuple[str, str]] = set()
    per_actor: dict[str, Counter[date]] = {}
    for hit in hits:
        day = _day(hit, tz)
        for actor in hit.actors:
            if (actor, hit.item_id) in seen:
                continue
            seen.add((actor, hit.item_id))
            per_actor.setdefault(names.get(actor, actor), Counter())[day] += 1
    return per_actor


def _day(hit: StoredHit, tz: tzinfo) -> date:
    stamp = hit.published
    try:
        if len(stamp) == 10:
            return date.fromisoformat(stamp)
        if stamp:
            return from_iso(stamp).astimezone(tz).date()
    except ValueError:
        pass
    return hit.created_at.astimezone(tz).date()


def chart_png(per_actor: dict[str, Counter[date]]) -> bytes:
    """The busiest actors' mentions per day as a 600×240 PNG; b"" when the data covers fewer
    than MIN_DAYS days or matplotlib is not installed."""
    days = sorted({d for counts in per_actor.values() for d in counts})
    if len(days) < MIN_DAYS:
        return b""
    try:
        from matplotlib.figure import Figure  # no pyplot: no global state, safe in threads
    except ImportError:
        log.warning("digest chart skipped: matplotlib is not installed (news-monitor[chart])")
        return b""
    busiest = sorted(per_actor, key=lambda a: (-sum(per_actor[a].values()), a))[:MAX_ACTORS]
    span = [date.fromordinal(n) for n in range(days[0].toordinal(), days[-1].toordinal() + 1)]
    figure = Figure(figsize=(6, 2.4), dpi=100)
    axes = figure.add_subplot()
    for actor in busiest:
        axes.plot(span, [per_actor[actor][d] for d in span], marker="o", linewidth=1.5,
                  markersize=3, label=actor)  # fmt: skip
    axes.set_xticks(span, [f"{d:%a %d}" for d in span], fontsize=7)
    axes.tick_params(axis="y", labelsize=7)
    axes.set_ylabel("items", fontsize=7)
    axes.spines[["top", "right"]].set_visible(False)
    axes.legend(fontsize=7, frameon=False, loc="upper left", ncols=3)
    figure.tight_layout(pad=0.4)
    return _small(figure)


def _small(figure: Figure) -> bytes:
    """The PNG in 32 colours (a line chart needs no more): a sixth of the bytes, so the
    chart costs the message little of its budget."""
    from PIL import Image  # matplotlib's own dependency

    drawn = io.BytesIO()
    figure.savefig(drawn, format="png", dpi=100)
    drawn.seek(0)
    out = io.BytesIO()
    Image.open(drawn).convert("RGB").quantize(colors=32).save(out, format="PNG", optimize=True)
    return out.getvalue()
