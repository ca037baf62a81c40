"""New items into stories: each joins the open story of a related item or opens its own.

Related means reported close in time (within `LINK_WINDOW` of an item of the story, so a
story is linked over days) and either a near-duplicate (dedupe.py) or about the same event:
titles sharing most of their words with the same numbers, or the same actors found by the
rules and a fair share of title words. Two incidents in one town a week apart share the
town's name, not an item within the window, and stay two stories. A story is open while its
last item is younger than `OPEN_WINDOW`. Candidates come from the items' LSH band keys, so
assignment costs a lookup per item, not a comparison with every open story."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from rapidfuzz import fuzz

from monitor.dedupe import Identity, Text, near_duplicate

OPEN_WINDOW = timedelta(days=7)
LINK_WINDOW = timedelta(days=3)
TITLE_SHARE = 70.0  # rapidfuzz token_set_ratio of the folded titles
ACTOR_TITLE_SHARE = 50.0  # the same when the rules found a shared actor


@dataclass(frozen=True)
class Member:
    """An item already in a story: its story, its text and the actors the rules found in it."""

    story: str
    text: Text
    actors: frozenset[str]


def related(a: Text, a_actors: frozenset[str], b: Member) -> bool:
    if a.when and b.text.when and abs(a.when - b.text.when) > LINK_WINDOW:
        return False
    if near_duplicate(a, b.text):
        return True
    if not a.title or not b.text.title:
        return False
    if {w for w in a.title if w.isdigit()} != {w for w in b.text.title if w.isdigit()}:
        return False
    share = fuzz.token_set_ratio(" ".join(a.title), " ".join(b.text.title))
    if share >= TITLE_SHARE and min(len(a.title), len(b.text.title)) >= 4:
        return True
    return bool(a_actors & b.actors) and share >= ACTOR_TITLE_SHARE


class Assigner:
    """Stories for one cycle's new items. `stored` gives, for some band keys, the members of
    open stories carrying them (one batched lookup for the cycle)."""

    def __init__(self, stored: dict[str, list[Member]]) -> None:
        self._by_key = {k: list(v) for k, v in stored.items()}

    @classmethod
    def for_cycle(
        cls,
        identities: Sequence[Identity],
        lookup: Callable[[list[str]], dict[str, list[Member]]],
    ) -> Assigner:
        keys = sorted({k for i in identities for k in i.near})
        return cls(lookup(keys) if keys else {})

    def assign(self, identity: Identity, actors: frozenset[str]) -> str:
        """The story of this new item (its own id for a new story); remembered for the
        cycle's later items."""
        story = self._find(identity, actors) or identity.text.id
        member = Member(story, identity.text, actors)
        for key in identity.near:
            self._by_key.setdefault(key, []).append(member)
        return story

    def _find(self, identity: Identity, actors: frozenset[str]) -> str | None:
        for key in identity.near:
            for member in self._by_key.get(key, ()):
                if related(identity.text, actors, member):
                    return member.story
        return None
