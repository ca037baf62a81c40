"""Search queries and snippets over folded text, so `monitor search` reads words the way the
rules do: `Вучић`, `Vučić` and `VUCIC` are one word, and so are `Μητσοτάκης` and `Mitsotakis`.

The store indexes each item's folded title, summary and content (a second FTS5 table beside
the plain one); a query is folded the same way before it is handed to FTS5. A query is words
and "quoted phrases", each optionally under a field (`title:Вучић`, `summary:"licence
plates"`), with `*` at the end of a word for a prefix (`kosov*`), and `lang:it` filters by the
item's detected language. Every term must occur. Snippets are cut from the original text,
the matched words marked, by mapping folded offsets back (the same map evidence uses).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from monitor.normalise import fold, fold_with_offsets

SEARCH_FIELDS = ("title", "summary", "content")
_TOKEN_RE = re.compile(r'(?:(?P<field>\w+):)?(?P<term>"[^"]*"?\*?|[^\s"]+)')
_WORD_RE = re.compile(r"\w+")
SNIPPET_WORDS = 12


@dataclass(frozen=True)
class SearchQuery:
    """A parsed query: the FTS5 MATCH expression over the folded table, the languages to keep
    (empty: all), and the folded words to mark in snippets."""

    match: str
    languages: tuple[str, ...]
    words: tuple[str, ...]
    prefixes: tuple[str, ...]
    # each phrase as (field or "", its folded words, whether the last is a prefix)
    phrases: tuple[tuple[str, tuple[str, ...], bool], ...] = ()


def parse_search(query: str) -> SearchQuery | None:
    """The query as FTS5 syntax over folded columns; None when it holds no word to look for.
    Quoting every phrase means no user input is ever read as FTS5 operators."""
    parts: list[str] = []
    languages: list[str] = []
    words: list[str] = []
    prefixes: list[str] = []
    phrases: list[tuple[str, tuple[str, ...], bool]] = []
    for m in _TOKEN_RE.finditer(query):
        field, term = (m.group("field") or "").lower(), m.group("term")
        if field == "lang":
            languages.extend(code for code in re.split(r"[,|]", term.lower()) if code)
            continue
        if field and field not in SEARCH_FIELDS:  # "word:word" that is no field: plain text
            term = f"{field} {term}"
            field = ""
        prefix = term.endswith("*")
        tokens = _WORD_RE.findall(fold(term.rstrip("*")))
        if not tokens:
            continue
        phrase = '"' + " ".join(tokens) + '"' + (" *" if prefix else "")
        parts.append(f"{field} : {phrase}" if field else phrase)
        phrases.append((field, tuple(tokens), prefix))
        words.extend(tokens[:-1] if prefix else tokens)
        if prefix:
            prefixes.append(tokens[-1])
    if not parts:
        return None
    return SearchQuery(" AND ".join(parts), tuple(languages), tuple(words), tuple(prefixes),
                       tuple(phrases))  # fmt: skip


_WEIGHTS = {"title": "A", "summary": "B", "content": "C", "": ""}


def as_tsquery(query: SearchQuery) -> str:
    """The query in PostgreSQL's tsquery syntax, for the PostgreSQL store: each phrase's
    words in a row (`<->`), a field as the weight its column has, every phrase required.
    The words are folded word characters only, so none can be read as an operator."""
    phrases = []
    for field, tokens, prefix in query.phrases:
        weight = _WEIGHTS[field]
        lexemes = [f"'{t}'" + (f":{weight}" if weight else "") for t in tokens]
        if prefix:
            lexemes[-1] = f"'{tokens[-1]}':*{weight}"
        phrases.append("(" + " <-> ".join(lexemes) + ")")
    return " & ".join(phrases)


def snippet(texts: list[str], query: SearchQuery, width: int = SNIPPET_WORDS) -> str:
    """About `width` words of the first text in which a query word occurs, each occurrence
    marked [like this]; the start of the first non-empty text when none does."""
    for text in texts:
        spans = _spans(text, query)
        if spans:
            return _window(text, spans, width)
    first = next((t for t in texts if t), "")
    cut = first.split()
    return " ".join(cut[:width]) + (" …" if len(cut) > width else "")


def _spans(text: str, query: SearchQuery) -> list[tuple[int, int]]:
    """Where the query's words occur in `text`, as offsets into the original text."""
    if not text:
        return []
    folded, origin = fold_with_offsets(text)
    exact, prefixes = set(query.words), query.prefixes
    spans = []
    for m in _WORD_RE.finditer(folded):
        word = m.group()
        if word in exact or any(word.startswith(p) for p in prefixes):
            spans.append((origin[m.start()], origin[m.end() - 1] + 1))
    return spans


def _window(text: str, spans: list[tuple[int, int]], width: int) -> str:
    """The words around the first span, with every span inside the window marked."""
    words = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
    first = next(i for i, (s, e) in enumerate(words) if e > spans[0][0])
    lo = max(0, min(first - width // 3, len(words) - width))
    hi = min(len(words), lo + width)
    start, end = words[lo][0], words[hi - 1][1]
    out, pos = [], start
    for s, e in spans:
        if s < start or e > end:
            continue
        out += [text[pos:s], "[", text[s:e], "]"]
        pos = e
    out.append(text[pos:end])
    return ("… " if lo else "") + "".join(out) + (" …" if hi < len(words) else "")
