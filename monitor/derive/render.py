"""A derivation as a rule file: new actors under `actors:`, the loaded rules' actors under
`names:` (so the file loads beside them without a duplicate id, each marked with the
folder/id it is known as and the aliases the article adds), topic rules under `rules:`."""

from __future__ import annotations

import yaml

from monitor.derive import Derivation
from monitor.derive.actors import Proposal


def render(result: Derivation) -> str:
    lines = [
        f"# Proposed by `monitor rules derive` from {result.source}"
        + (f" ({_one_line(result.title)})" if result.title else ""),
        "# Review every entry before use: names come from capitalisation, acronym patterns,",
        "# frequency and gazetteers, not from understanding the text.",
        f"# {len(result.new)} new actors, {len(result.known)} known ones (under names:), "
        f"{len(result.topics)} topic rules.",
    ]
    if result.new:
        lines.append("actors:")
        for p in result.new:
            lines.append(f"  # {_mentions(p)}" + _left_out(p))
            lines.extend(_entry({"id": p.id, "name": p.name, "kind": p.kind,
                                 "aliases": p.aliases or [p.name]}))  # fmt: skip
    if result.known:
        lines.append("names:")
        for p in result.known:
            adds = ", ".join(p.aliases) if p.aliases else "nothing new"
            lines.append(f"  # known: {p.known} ({p.origin}); {_mentions(p)}; adds: {adds}"
                         + _left_out(p))  # fmt: skip
            forms = [f for f in p.forms if f not in p.left_out]
            aliases = list(dict.fromkeys([*forms, *p.aliases])) or [p.name]
            lines.extend(_entry({"actor": p.id, "lang": "en", "aliases": aliases}))
    if result.topics:
        lines.append("rules:")
        for t in result.topics:
            lines.extend(_entry({"id": t.id, "title": t.title, "priority": "normal",
                                 "tags": ["derived"], "query": t.query}))  # fmt: skip
    return "\n".join(lines) + "\n"


def _left_out(p: Proposal) -> str:
    if not p.left_out:
        return ""
    return "; left out, as they read as common words: " + ", ".join(p.left_out)


def _mentions(p: Proposal) -> str:
    return f"{p.mentions} mention{'s' if p.mentions != 1 else ''}"


def _one_line(text: str) -> str:
    return " ".join(text.split())[:120]


def _entry(entry: dict[str, object]) -> list[str]:
    body = yaml.safe_dump([entry], allow_unicode=True, sort_keys=False, width=96,
                          default_flow_style=None)  # fmt: skip
    return ["  " + line for line in body.rstrip("\n").splitlines()]
