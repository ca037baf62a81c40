"""The language an item is written in, from its title and the start of its text.

py3langid (a Naive Bayes model over byte n-grams, shipped inside the package) restricted to
the languages the region's news is written in: restricting it turns a 97-way guess into a
22-way one, which is both faster and far less often wrong on short headlines. About 0.1 ms an
item on this machine; the model loads once per process (0.6 s), on first use.

Serbian, Croatian, Bosnian and Montenegrin in Latin script are one language to a detector
(and nearly one to a reader): the code it gives among them is a guess, so queries and digests
can name the group as `sh` (see `expand`).
"""

from __future__ import annotations

import logging
import threading
import time
from functools import lru_cache
from typing import TYPE_CHECKING

from monitor.memo import Recent, digest

if TYPE_CHECKING:
    from py3langid.langid import LanguageIdentifier

# The languages the region's news is written in (ISO 639-1), in the order the README lists.
LANGUAGES = (
    "en", "sr", "hr", "bs", "sq", "mk", "sl", "bg", "el", "ro", "hu", "tr", "ru", "uk",
    "it", "de", "fr", "es", "pt", "nl", "pl", "cs", "sv",
)  # fmt: skip
# Names that stand for several codes: the Serbo-Croatian group (Montenegrin has no code of
# its own in the model).
GROUPS = {"sh": ("sr", "hr", "bs"), "cnr": ("sr", "hr", "bs"), "me": ("sr", "hr", "bs")}
_SH = frozenset(GROUPS["sh"])
MIN_LETTERS = 12  # below this a guess is noise ("Kosovo", "NATO summit")
MIN_CONFIDENCE = 0.5  # normalised probability over LANGUAGES
SAMPLE_CHARS = 400  # of the text after the title: enough to decide, cheap to score

RECENT = 50_000  # languages of the latest samples kept (some 8 MB)
_recent: Recent[str] = Recent(RECENT)
_lock = threading.Lock()
log = logging.getLogger(__name__)
RETRY_LOAD_SECONDS = 300.0  # after the model failed to load (a full temp folder, say)
_failed_at: float | None = None


@lru_cache(maxsize=1)
def _identifier() -> LanguageIdentifier:
    # imported here: numpy and the model cost 0.6 s, which commands that never detect skip
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    with _lock:
        ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        ident.set_languages(list(LANGUAGES))
        return ident


def detect(title: str, text: str = "") -> str:
    """ISO 639-1 code of the language of an item with this title and text; "" when there is
    too little text to tell or the model is unsure."""
    sample = f"{title}. {text[:SAMPLE_CHARS]}" if text else title
    if not _letters_at_least(sample, MIN_LETTERS):
        return ""
    key = digest(sample)
    known = _recent.get(key)  # an item read again, as a changed feed is
    if known is not None:
        return known
    identifier = _available_identifier()
    if identifier is None:
        return ""  # not remembered: the model may load next time
    ranked = identifier.rank(sample)
    code, confidence = ranked[0]
    if code in _SH:  # sure it is Serbo-Croatian, unsure which: the group's sum decides
        confidence = sum(p for c, p in ranked if c in _SH)
    return _recent.put(key, str(code) if confidence >= MIN_CONFIDENCE else "")


def _letters_at_least(text: str, count: int) -> bool:
    """Whether `text` holds `count` letters: looks only as far as it needs to."""
    for ch in text:
        if ch.isalpha():
            count -= 1
            if count <= 0:
                return True
    return False


def _available_identifier() -> LanguageIdentifier | None:
    """The model, or None while it cannot be loaded: py3langid unpacks it through a temporary
    file, and a full disk must cost items their language, never the items themselves."""
    global _failed_at
    if _failed_at is not None and time.monotonic() - _failed_at < RETRY_LOAD_SECONDS:
        return None
    try:
        identifier = _identifier()
    except (OSError, ValueError) as exc:
        if _failed_at is None:
            log.warning("language detection off for now (model not loaded: %s)", exc)
        _failed_at = time.monotonic()
        return None
    _failed_at = None
    return identifier


def known(code: str) -> bool:
    """Whether `code` names a language (or group) that detection can give."""
    return code.strip().lower() in LANGUAGES or code.strip().lower() in GROUPS


def expand(codes: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Language codes as a user writes them (`it`, `sh`, `SR`) as the codes stored."""
    out: list[str] = []
    for code in codes:
        code = code.strip().lower()
        for one in GROUPS.get(code, (code,)):
            if one and one not in out:
                out.append(one)
    return tuple(out)
