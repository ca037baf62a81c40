"""Who reported a story, in the words a reader scans: "first reported by Balkan Insight 07:12
· 6 outlets (2 wire, 1 state media) · 3 languages".

The kind of an outlet comes from its source's tags in `monitor.toml`: the first tag that is
one of `OUTLET_KINDS` (`tags = ["wire"]`, `tags = ["state-media", "serbia"]`). The store
gathers the outlets (`Store.story_provenance`); this module only names and words them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, tzinfo

from monitor.clock import from_iso
from monitor.models import StoryProvenance

# The kinds of outlet a source tag may name, in the order they are listed.
OUTLET_KINDS: tuple[str, ...] = (
    "wire",
    "state-media",  # run by a state
    "public-media",  # publicly funded, editorially independent (RFE/RL, DW, BBC, RAI)
    "independent",
    "official",  # governments, missions, alliances
    "think-tank",
)
KIND_LABELS = {
    "wire": "wire",
    "state-media": "state media",
    "public-media": "public media",
    "independent": "independent",
    "official": "official",
    "think-tank": "think tank",
}


def outlet_kind(tags: Sequence[str]) -> str:
    """The outlet kind a source's tags give: the first tag that names one, else ""."""
    return next((tag for tag in tags if tag in OUTLET_KINDS), "")


def when(stamp: str, tz: tzinfo, today: date | None = None) -> str:
    """A report time for a reader: "07:12" on `today`, "23 Nov 07:12" on another day,
    "23 Nov 2022" for a day given without a time (never an invented time)."""
    if not stamp:
        return ""
    if len(stamp) == 10:
        try:
            return date.fromisoformat(stamp).strftime("%d %b %Y")
        except ValueError:
            return ""
    try:
        local = from_iso(stamp).astimezone(tz)
    except ValueError:
        return ""
    if today is not None and local.date() == today:
        return f"{local:%H:%M}"
    return f"{local:%d %b %H:%M}"


def summary(provenance: StoryProvenance, tz: tzinfo, now: datetime | None = None) -> str:
    """The one provenance line of a story in a digest."""
    first = provenance.first
    if first is None:
        return ""
    today = now.astimezone(tz).date() if now else None
    parts = [f"first reported by {first.source} {when(first.reported, tz, today)}".rstrip()]
    count = len(provenance.outlets)
    if count > 1:
        kinds = ", ".join(f"{n} {KIND_LABELS[k]}" for k, n in provenance.kinds().items())
        parts.append(f"{count} outlets" + (f" ({kinds})" if kinds else ""))
    languages = len(provenance.languages)
    if languages > 1:
        parts.append(f"{languages} languages")
    return " · ".join(parts)
