"""The one definition of item identity, used by the store's lookup and by the cycle's own index.

Two items are the same item when they share an exact key:
- the item id (a GUID is scoped to its source: two sites may both number a story `1001`);
- the source and its GUID;
- the link, as `url_key` reads it (scheme, `www.`, a trailing slash, parameter order and
  tracking parameters make no difference); a list-page item is identified by its link alone;
- for an item with neither GUID nor link, the fingerprint of its text.

Or when one is a near-duplicate of the other, found through MinHash/LSH band keys and then
confirmed on the folded text (datasketch for the sketches, rapidfuzz for titles):
- their bodies share most of their word pairs (the same article syndicated, a headline
  edited), or
- they come from different outlets and their titles are nearly the same (another outlet's
  teaser under the same headline, or a one-word edit), with the same numbers in them
  (counts, dates and rounds are facts). One outlet's repeated headline
  ("KFOR Press Release", "Daily briefing") under different links stays separate items.
Short texts carry too little evidence and are never near-duplicates; neither are items
published days apart (the same wording a week later is another incident)."""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from rapidfuzz import fuzz

from monitor.clock import from_iso
from monitor.memo import Recent, digest
from monitor.models import Item
from monitor.normalise import canonical_url, fold

MIN_TITLE_WORDS = 5  # fewer folded words: the title alone proves nothing
MIN_BODY_WORDS = 12
TITLE_SIMILARITY = 85.0  # rapidfuzz ratio (0-100) of the folded titles
BODY_SIMILARITY = 0.5  # Jaccard of the bodies' word pairs
NEAR_WINDOW = timedelta(days=3)
BODY_WORDS = 80  # the start of the body is what syndicated copies keep
BODY_CHARS = BODY_WORDS * 12  # read of a body: more than BODY_WORDS words
# LSH: BANDS bands of ROWS hash values each; a pair at Jaccard 0.7 of title words shares a
# band with probability 0.98, at 0.3 with 0.24 (the rest are confirmed or dropped on text).
BANDS, ROWS = 10, 3
# A band key many stored items carry (common words hashed alike) is weak evidence: its latest
# holders are the candidates, not all of them.
HOLDERS_PER_KEY = 50
_WORD = re.compile(r"\w+")
_DIGIT = re.compile(r"\d")


def url_key(url: str) -> str:
    """The address as identity: the canonical URL without scheme, `www.` or trailing slash.
    (The stored link keeps its scheme and host: a site may serve only one of them.)"""
    canonical = canonical_url(url)
    if not canonical:
        return ""
    parts = urlsplit(canonical)
    host = parts.netloc.removeprefix("www.")
    path = parts.path.rstrip("/")
    return f"{host}{path}?{parts.query}" if parts.query else f"{host}{path}"


def exact_keys(item: Item) -> list[str]:
    """Keys any one of which, shared, makes two items the same item."""
    keys = [f"id:{item.id}"]
    if item.guid:
        keys.append(f"g:{item.source}\x1f{item.guid}")
    if item.url:
        keys.append(f"u:{url_key(item.url)}")
    if not (item.guid or item.url):
        keys.append(f"f:{item.fingerprint}")
    return keys


@dataclass(frozen=True, eq=False)
class Text:
    """What near-duplicate detection compares: folded title words, folded body words, when.
    The words are worked out on first use, once: a stored item read as a candidate is most
    often ruled out on its source or time alone."""

    id: str
    source: str
    when: datetime | None
    raw_title: str = field(default="", repr=False)
    raw_body: str = field(default="", repr=False)

    @classmethod
    def of(cls, item: Item, first_seen: str = "") -> Text:
        body = item.summary or item.content
        return cls.read(item.id, item.source, item.title, body, item.published, first_seen)

    @classmethod
    def read(
        cls, item_id: str, source: str, title: str, body: str, published: str, first_seen: str
    ) -> Text:
        """From an item's stored columns (`body`: its summary, else its content)."""
        when = _moment(published) or _moment(first_seen)
        return cls(item_id, source, when, title, body[:BODY_CHARS])

    @functools.cached_property
    def title(self) -> tuple[str, ...]:
        return tuple(_WORD.findall(fold(self.raw_title)))

    @functools.cached_property
    def body(self) -> tuple[str, ...]:
        return tuple(_WORD.findall(fold(self.raw_body)))[:BODY_WORDS]

    @functools.cached_property
    def pairs(self) -> frozenset[str]:
        return frozenset(map(" ".join, zip(self.body, self.body[1:], strict=False)))

    @functools.cached_property
    def title_numbers(self) -> frozenset[str]:
        return _numbers(self.title)


def near_keys(text: Text) -> list[str]:
    """LSH band keys of the title words and of the body's word pairs, for texts long enough.
    (The latest are remembered, as 8-byte digests: a changed feed brings back its items.)"""
    key = digest(text.raw_title, text.raw_body)
    bands = _recent_bands.get(key)
    if bands is None:
        bands = _recent_bands.put(key, _band_digests(text))
    title, body = bands
    return _keys("t", title) + _keys("b", body)


_recent_bands: Recent[tuple[bytes, bytes]] = Recent(50_000)  # some 22 MB full


def _band_digests(text: Text) -> tuple[bytes, bytes]:
    title = _bands(set(text.title)) if len(text.title) >= MIN_TITLE_WORDS else b""
    body = _bands(text.pairs) if len(text.body) >= MIN_BODY_WORDS else b""
    return title, body


def _keys(prefix: str, digests: bytes) -> list[str]:
    return [f"{prefix}{n}:{digests[n * 8 : n * 8 + 8].hex()}" for n in range(len(digests) // 8)]


def near_duplicate(a: Text, b: Text) -> bool:
    """Whether `a` is another copy of `b` (see the module's rules)."""
    if a.when and b.when and abs(a.when - b.when) > NEAR_WINDOW:
        return False
    long_bodies = min(len(a.body), len(b.body)) >= MIN_BODY_WORDS
    if long_bodies and _jaccard(a.pairs, b.pairs) >= BODY_SIMILARITY:
        return True
    if a.source == b.source:
        return False
    if min(len(a.title), len(b.title)) < MIN_TITLE_WORDS:
        return False
    if a.title_numbers != b.title_numbers:  # "round 3" and "round 4" are two stories
        return False
    share = fuzz.ratio(" ".join(a.title), " ".join(b.title), score_cutoff=TITLE_SIMILARITY)
    return share >= TITLE_SIMILARITY


@dataclass(frozen=True)
class Identity:
    """An item's keys and text, computed once per cycle (the sketches are the costly part)."""

    exact: tuple[str, ...]
    text: Text
    near: tuple[str, ...]

    @classmethod
    def of(cls, item: Item) -> Identity:
        text = Text.of(item)
        return cls(tuple(exact_keys(item)), text, tuple(near_keys(text)))

    @classmethod
    def with_bands(cls, item: Item, near: tuple[str, ...]) -> Identity:
        """`of`, with the band keys already worked out (in a parse worker)."""
        return cls(tuple(exact_keys(item)), Text.of(item), near)

    @property
    def keys(self) -> tuple[str, ...]:
        return self.exact + self.near


class Index:
    """Items seen so far in a cycle (or a document): the same story twice in one document, or
    in two feeds of one cycle, is stored once."""

    def __init__(self) -> None:
        self._exact: dict[str, str] = {}
        self._near: dict[str, list[Text]] = {}

    def find(self, identity: Identity) -> str | None:
        for key in identity.exact:
            if key in self._exact:
                return self._exact[key]
        for key in identity.near:
            for other in self._near.get(key, [])[-HOLDERS_PER_KEY:]:  # as the store's lookup
                if near_duplicate(identity.text, other):
                    return other.id
        return None

    def add(self, identity: Identity) -> None:
        for key in identity.exact:
            self._exact.setdefault(key, identity.text.id)
        for key in identity.near:
            self._near.setdefault(key, []).append(identity.text)


@dataclass(frozen=True)
class Known:
    """What the store's identity lookup found for some items: the stored item each one is a
    copy of, and the stored items the others were compared with (story assignment compares
    the new ones with the same holders again, on their titles)."""

    copies: dict[str, str]  # item id -> the stored item it is a copy of
    band_holders: dict[str, list[str]]  # band key -> its latest stored holders, oldest first
    texts: dict[str, Text]  # of the holders compared


def resolve(
    identities: Sequence[Identity],
    holders: Callable[[list[str]], dict[str, list[str]]],
    texts: Callable[[list[str]], dict[str, Text]],
) -> Known:
    """For the store's lookup: which items are copies of stored ones. `holders` gives the
    stored items carrying each of some keys, `texts` the texts of some stored items."""
    wanted = sorted({k for i in identities for k in i.keys})
    held = holders(wanted)
    exact = {k: ids[0] for k, ids in held.items() if not is_band(k)}
    known: dict[str, str] = {}
    pending = []
    for identity in identities:
        found = next((exact[k] for k in identity.exact if k in exact), None)
        if found is not None:
            known[identity.text.id] = found
        elif any(k in held for k in identity.near):
            pending.append(identity)
    candidates = sorted({c for i in pending for k in i.near for c in held.get(k, ())})
    stored = texts(candidates) if candidates else {}
    for identity in pending:
        found = _near_match(identity, held, stored)
        if found is not None:
            known[identity.text.id] = found
    bands = {k: ids for k, ids in held.items() if is_band(k)}
    return Known(known, bands, stored)


def is_band(key: str) -> bool:
    return key[:1] in {"t", "b"} and key[1:2].isdigit()


def _near_match(
    identity: Identity, held: dict[str, list[str]], stored: dict[str, Text]
) -> str | None:
    tried: set[str] = set()
    for key in identity.near:
        for candidate in held.get(key, ()):
            if candidate not in tried and candidate in stored:
                tried.add(candidate)
                if near_duplicate(identity.text, stored[candidate]):
                    return candidate
    return None


@functools.cache
def _minhash() -> Callable[[], Any]:
    """A factory of empty sketches sharing one set of permutations. datasketch is imported
    here, on first use: its package pulls in scipy, a second of start-up that commands which
    never compare texts (status, digest, search) should not pay."""
    from datasketch import MinHash

    seeded = MinHash(num_perm=BANDS * ROWS, seed=12)
    return functools.partial(
        MinHash, num_perm=BANDS * ROWS, permutations=seeded.permutations, scheme=seeded.scheme
    )


def _bands(tokens: Iterable[str]) -> bytes:
    """The BANDS band digests (8 bytes each) of a MinHash sketch of these tokens."""
    sketch = _minhash()()
    sketch.update_batch([t.encode() for t in tokens])
    values = sketch.hashvalues
    return b"".join(
        hashlib.blake2b(values[band * ROWS : (band + 1) * ROWS].tobytes(), digest_size=8).digest()
        for band in range(BANDS)
    )


def _numbers(words: tuple[str, ...]) -> frozenset[str]:
    return frozenset(w for w in words if _DIGIT.search(w))


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a or not b:
        return 0.0
    shared = len(a & b)
    return shared / (len(a) + len(b) - shared)


def _moment(value: str) -> datetime | None:
    if not value or len(value) < 20:  # a bare day, or nothing: no time to compare
        return None
    try:
        return from_iso(value)
    except ValueError:
        return None
