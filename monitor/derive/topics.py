"""Topic rules from an article's key phrases: runs of lower-case words scored by how often
the article uses them and how rare they are in English (wordfreq), each paired with the
actors of the sentences it stands in; phrases that share their actors make one rule."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from monitor.derive.actors import Proposal
from monitor.derive.aliases import zipf
from monitor.derive.spans import sentences
from monitor.normalise import fold
from monitor.query import Node, Term, walk

FUNCTION_ZIPF = 5.3  # words at least this common ("the", "also", "which") end a phrase
GENERIC_ZIPF = 4.6  # a phrase of such words only ("new government") is no topic
ONCE_ZIPF = 3.2  # mean word frequency below which a phrase used once still counts
MAX_WORDS = 3
MAX_PHRASES = 24
MAX_TOPICS = 8
PER_TOPIC = 6
ACTORS_PER_TOPIC = 4
MAX_LISTS = 3  # of the loaded rules' lists named in one topic rule
_WORD_RE = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*|\S")


@dataclass(frozen=True)
class _Phrase:
    text: str
    score: float
    sentences: frozenset[int]


def topics(text: str, proposals: list[Proposal], lists: dict[str, Node] | None = None) -> list:
    """Topic rules for the article; `lists`, the loaded rules' named lists: a topic whose
    phrase one of them holds names the list too ($tensions carries every language)."""
    from monitor.derive import Topic

    sents = [s for _, s in sentences(text)]
    phrases = _key_phrases(sents)
    mentions = [_actors_in(s, proposals) for s in sents]
    groups: list[tuple[list[str], Counter[str]]] = []
    for phrase in phrases:
        near = Counter(a for i in phrase.sentences for a in mentions[i])
        if not near:
            continue
        top = {a for a, _ in near.most_common(ACTORS_PER_TOPIC)}
        for members, actors in groups:
            mine = {a for a, _ in actors.most_common(ACTORS_PER_TOPIC)}
            if len(members) < PER_TOPIC and len(top & mine) * 2 >= min(len(top), len(mine)):
                members.append(phrase.text)
                actors.update(near)
                break
        else:
            if len(groups) < MAX_TOPICS:
                groups.append(([phrase.text], Counter(near)))
    out, used = [], set()
    for members, actors in groups:
        topic_id = _unique(_slug(members[0]), used)
        who = tuple(a for a, _ in actors.most_common(ACTORS_PER_TOPIC))
        held = _lists_holding(members, lists or {})
        out.append(Topic(topic_id, ", ".join(members[:3]).capitalize(), tuple(members), who,
                         held))  # fmt: skip
    return out


def _lists_holding(phrases: list[str], lists: dict[str, Node]) -> tuple[str, ...]:
    """The lists with a term that matches one of the phrases (a word, or a prefix of it)."""
    found = []
    for name, node in lists.items():
        terms = [n for n, _ in walk(node) if isinstance(n, Term)]
        for phrase in phrases:
            folded = fold(phrase)
            if any(folded == t.pattern or (t.prefix and folded.startswith(t.pattern))
                   for t in terms):  # fmt: skip
                found.append(name)
                break
    return tuple(found[:MAX_LISTS])


def _key_phrases(sents: list[str]) -> list[_Phrase]:
    counts: Counter[str] = Counter()
    where: dict[str, set[int]] = {}
    for number, sentence in enumerate(sents):
        for run in _content_runs(sentence):
            for n in range(1, MAX_WORDS + 1):
                for i in range(len(run) - n + 1):
                    phrase = " ".join(run[i : i + n])
                    counts[phrase] += 1
                    where.setdefault(phrase, set()).add(number)
    scored = []
    for phrase, count in counts.items():
        words = phrase.split()
        if not _noun_like(words):
            continue
        rarity = sum(max(0.0, FUNCTION_ZIPF - zipf(w)) for w in words) / len(words)
        if all(zipf(w) >= GENERIC_ZIPF for w in words):
            continue
        if count < 2 and sum(zipf(w) for w in words) / len(words) > ONCE_ZIPF:
            continue  # said once, a phrase must be rare to be a topic
        scored.append(_Phrase(phrase, count**1.5 * rarity * (1 + 0.3 * (len(words) - 1)),
                              frozenset(where[phrase])))  # fmt: skip
    scored.sort(key=lambda p: (-p.score, p.text))
    picked: list[_Phrase] = []
    for phrase in scored:
        words = set(phrase.text.split())
        if any(words <= set(p.text.split()) or set(p.text.split()) <= words for p in picked):
            continue
        picked.append(phrase)
        if len(picked) == MAX_PHRASES:
            break
    return picked


def _noun_like(words: list[str]) -> bool:
    """No adverb in it and no verb form at its ends: "paramilitary formations", not
    "stoking ethnoreligious tensions" or "helped avert" (a guess from endings, no tagger)."""
    if any(w.endswith("ly") for w in words):
        return False
    return not words[0].endswith(("ing", "ed", "es")) and not words[-1].endswith(("ing", "ed"))


def _content_runs(sentence: str) -> list[list[str]]:
    """Runs of lower-case words, split at common words, capitals, numbers and punctuation."""
    runs: list[list[str]] = [[]]
    for token in _WORD_RE.findall(sentence):
        if token.isalpha() or "-" in token:
            plain = token.islower() and len(token) >= 3 and zipf(token) < FUNCTION_ZIPF
        else:
            plain = False
        if plain:
            runs[-1].append(token)
        elif runs[-1]:
            runs.append([])
    return [r for r in runs if r]


def _actors_in(sentence: str, proposals: list[Proposal]) -> set[str]:
    padded = " " + " ".join("".join(c if c.isalnum() else " " for c in fold(sentence)).split())
    padded += " "
    found = set()
    for proposal in proposals:
        for form in proposal.forms:
            key = " ".join("".join(c if c.isalnum() else " " for c in fold(form)).split())
            if key and f" {key} " in padded:
                found.add(proposal.id)
                break
    return found


def _slug(text: str) -> str:
    return "-".join("".join(c if c.isalnum() else " " for c in fold(text)).split())[:40]


def _unique(base: str, used: set[str]) -> str:
    candidate, n = base, 2
    while candidate in used:
        candidate, n = f"{base}-{n}", n + 1
    used.add(candidate)
    return candidate
