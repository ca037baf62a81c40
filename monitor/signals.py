"""What changed: surges, breaking stories and firsts, from the stories the cycle stored.

Every count is of distinct stories (stories.py), never of raw items: one event carried by ten
outlets is one story. Each series (an actor, a rule, "all") is judged against its own
history, so "Dodik: 14 stories today" is news and "Serbia: 14 stories today" is not.

**The surge model, for an analyst.** For each series, the baseline is its stories per day
over the last `baseline_days` (28) full days, with one pseudo-story added (so a series with
no stories in 28 days expects 1/29 a day, not zero). It is scaled to today's weekday and,
for the hourly window, to the hour of day, by the shape of all stories (a Sunday carries
fewer stories than a Tuesday, 03:00 fewer than 10:00). News comes in clusters, so the count
is judged under a negative binomial with the series' own dispersion (variance over mean of
its daily counts; 1, i.e. Poisson, when they vary less than that): a day of 14 stories
against 2.1 a day with dispersion 1.5 has a tail probability of about 1e-6. A surge is
raised when the stories of the last 24 hours (or of the last hour) are at least
`min_stories` and their tail probability is below `threshold` (0.001); once raised, a series
does not surge again for 24 hours. Why not an EWMA: a negative binomial tail says in one
number how surprising the count is, reads the same for a series of 0.1 and of 40 stories a
day, and needs no smoothing constant to tune.

**Breaking stories.** Stories usually gain few outlets: over the last 28 days, the outlets a
story gained in its first `breaking_window` (6 h) beyond its first one give a mean and a
dispersion; a story that gains outlets in the last 6 hours so fast that the count is below
`threshold` under that negative binomial, and has at least `min_outlets`, is breaking (once
per story).

**Firsts.** A first mention: a tracked actor in a story with no story naming it in the
`first_days` (90) before. A first co-occurrence: two actors in one story (from any of its
items) where no story held both in those days.

**Cold start.** A series surges only once it has `min_history` (14 days) of history of its
own: on a new database nothing surges for two weeks, a newly added actor not for two weeks
after it was first seen (its first mention is raised instead). Firsts need the database to
hold `min_history` of stories, and look back at most as far as the database goes. Breaking
stories need `min_history` and 30 stories begun in the baseline."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta

from monitor.models import Signal, SignalKind
from monitor.rules import RuleSet
from monitor.settings import DigestSettings, SignalSettings
from monitor.store import Store
from monitor.store.signals import ItemEvent, OutletEvent

DAY, HOUR = timedelta(days=1), timedelta(hours=1)
ALL = "all"  # the series of every story: the shape of the week and of the day
MIN_BREAKING_STORIES = 30  # stories the breaking baseline needs
BATCH = 5000  # events taken in per read
MAX_EVENTS = 10_000  # per run (a few seconds of one write transaction): an upgraded
# database's history is taken in over its first ticks


def tail(count: int, mean: float, dispersion: float) -> float:
    """P(X ≥ count) for a negative binomial of this mean and variance/mean ratio (Poisson at
    a dispersion of 1). Summed from the side that keeps precision for tiny probabilities."""
    if count <= 0:
        return 1.0
    mean = max(mean, 1e-9)
    if dispersion <= 1.0 + 1e-9:
        log_pmf = _poisson_log_pmf(mean)
    else:
        log_pmf = _nbinom_log_pmf(mean / (dispersion - 1.0), 1.0 / dispersion)
    if count <= mean:
        return max(0.0, 1.0 - sum(math.exp(log_pmf(i)) for i in range(count)))
    total, i = 0.0, count
    while True:  # terms decrease past the mean: stop when they no longer add anything
        term = math.exp(log_pmf(i))
        total += term
        i += 1
        if term < total * 1e-12 or i > count + 100_000:
            return min(1.0, total)


def _poisson_log_pmf(mean: float):  # type: ignore[no-untyped-def]
    log_mean = math.log(mean)
    return lambda i: i * log_mean - mean - math.lgamma(i + 1)


def _nbinom_log_pmf(r: float, p: float):  # type: ignore[no-untyped-def]
    head = r * math.log(p) - math.lgamma(r)
    log_q = math.log1p(-p)
    return lambda i: head + math.lgamma(i + r) - math.lgamma(i + 1) + i * log_q


@dataclass(frozen=True)
class Baseline:
    """A series' stories per day over its baseline days, and how much they vary."""

    per_day: float
    day_dispersion: float
    hour_dispersion: float
    days: int


@dataclass(frozen=True)
class Shape:
    """How all stories spread over the week and the day: factors around 1."""

    weekday: tuple[float, ...]  # 7, Monday first
    hour: tuple[float, ...]  # 24


def _dispersion(values: list[int]) -> float:
    if len(values) < 2:
        return 1.0
    mean = sum(values) / len(values)
    if mean <= 0:
        return 1.0
    variance = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return max(1.0, variance / mean)


def _midnight(moment: datetime) -> datetime:
    return datetime(moment.year, moment.month, moment.day, tzinfo=UTC)


@dataclass
class Detector:
    """The detectors over one store. Baselines are cached per series and day, so a replay
    keeps one Detector for its whole run; the service makes one per tick."""

    store: Store
    settings: SignalSettings = field(default_factory=SignalSettings)
    max_events: int = MAX_EVENTS  # items and outlets taken in per run
    _baselines: dict[tuple[str, date], Baseline | None] = field(default_factory=dict)
    _shapes: dict[date, Shape] = field(default_factory=dict)
    _breaking: dict[date, tuple[float, float] | None] = field(default_factory=dict)

    def run(self) -> list[Signal]:
        """Take in the items and outlets stored since the last run, oldest first (at most
        `max_events`), and return the signals they raised (stored too)."""
        raised: list[Signal] = []
        if not self.pending():
            return raised  # an idle tick: read, and write nothing
        with self.store.transaction():
            items, outlets = self.store.signal_progress()
            room = self.max_events
            while room > 0 and (batch := self.store.item_events(items, min(BATCH, room))):
                for event in batch:
                    raised += self._stored(self._item(event))
                items, room = batch[-1].rowid, room - len(batch)
            # outlets of items not taken in yet wait for them (a story needs its marks first)
            while room > 0 and (more := self.store.outlet_events(outlets, min(BATCH, room), items)):
                for outlet in more:
                    raised += self._stored(self._outlet(outlet))
                outlets, room = more[-1].rowid, room - len(more)
            self.store.save_progress(items, outlets)
        return raised

    def pending(self) -> bool:
        """Whether an item or an outlet was stored since the last run (read only): a run
        takes in at most `max_events`, so a large cycle is taken in over several."""
        items, outlets = self.store.signal_progress()
        return bool(self.store.item_events(items, 1) or self.store.outlet_events(outlets, 1, items))

    def _stored(self, signals: list[Signal]) -> list[Signal]:
        """Stored at once: the next event must see them (a series surges once a day)."""
        return [replace(s, id=self.store.add_signal(s)) for s in signals]

    # -- per item ---------------------------------------------------------------------------

    def _item(self, event: ItemEvent) -> list[Signal]:
        known = [s.removeprefix("actor:") for s in self.store.story_series(event.story, "actor:")]
        series = [ALL, *(f"actor:{a}" for a in event.actors), *(f"rule:{r}" for r in event.rules)]
        fresh = self.store.add_marks(event.story, series, event.at)
        raised = []
        newcomers = [s.removeprefix("actor:") for s in fresh if s.startswith("actor:")]
        for actor in newcomers:
            raised += self._first(f"actor:{actor}", (actor,), event, "first-mention")
        partners = sorted(set(known) | set(newcomers))
        for actor in newcomers:
            for other in partners:
                if other != actor and (other not in newcomers or other > actor):
                    pair = tuple(sorted((actor, other)))
                    raised += self._first(f"pair:{pair[0]}|{pair[1]}", pair, event, "first-pair",
                                          mark=True)  # fmt: skip
        for name in fresh:
            if name != ALL:
                raised += self._surge(name, event)
        return raised

    def _outlet(self, outlet: OutletEvent) -> list[Signal]:
        if not self.store.add_outlet(outlet.story, outlet.source, outlet.at):
            return []
        return self._breaking_story(outlet.story, outlet.at)

    # -- firsts ----------------------------------------------------------------------------

    def _first(
        self,
        series: str,
        actors: tuple[str, ...],
        event: ItemEvent,
        kind: SignalKind,
        mark: bool = False,
    ) -> list[Signal]:
        if mark and not self.store.add_marks(event.story, [series], event.at):
            return []
        began = self.store.series_began(ALL)
        if began is None or event.at - began < timedelta(seconds=self.settings.min_history):
            return []
        days = self.settings.first_days
        if self.store.seen_before(series, event.story, event.at - timedelta(days=days), event.at):
            return []
        return [
            Signal(kind=kind, at=event.at, series=series, actors=actors, story=event.story,
                   count=1, window=f"{days}d", history_days=(event.at - began).days)
        ]  # fmt: skip

    # -- surges ----------------------------------------------------------------------------

    def _surge(self, series: str, event: ItemEvent) -> list[Signal]:
        at, settings = event.at, self.settings
        last = self.store.last_signal("surge", series)
        if last is not None and at - last < DAY:
            return []
        base = self.baseline(series, at)
        if base is None:
            return []
        shape = self.shape(at)
        expected_day = base.per_day * shape.weekday[at.weekday()]
        expected_hour = expected_day / 24 * shape.hour[at.hour]
        for window, span, expected, dispersion in (
            ("24h", DAY, expected_day, base.day_dispersion),
            ("1h", HOUR, expected_hour, base.hour_dispersion),
        ):
            count = self.store.stories_between(series, at - span, at)
            if count < settings.min_stories:
                continue
            p = tail(count, expected, dispersion)
            if p < settings.threshold:
                kind, _, name = series.partition(":")
                return [
                    Signal(
                        kind="surge", at=at, series=series,
                        actors=(name,) if kind == "actor" else (),
                        rule=name if kind == "rule" else None, story=event.story, count=count,
                        baseline=expected, p=p, window=window, per_day=base.per_day,
                        history_days=base.days,
                    )
                ]  # fmt: skip
        return []

    def baseline(self, series: str, at: datetime) -> Baseline | None:
        """The series' baseline for the day of `at` (None in its cold start)."""
        key = (series, at.date())
        if key not in self._baselines:
            self._baselines[key] = self._compute_baseline(series, at)
        return self._baselines[key]

    def _compute_baseline(self, series: str, at: datetime) -> Baseline | None:
        began = self.store.series_began(series)
        if began is None or at - began < timedelta(seconds=self.settings.min_history):
            return None
        end = _midnight(at)
        days = min(self.settings.baseline_days, max(1, math.ceil((end - began) / DAY)))
        start = end - days * DAY
        hourly = self.store.hourly_stories(series, start, end)
        daily, hours = [0] * days, [0] * (days * 24)
        for stamp, count in hourly.items():
            index = int((datetime.fromisoformat(stamp + ":00+00:00") - start) / HOUR)
            hours[index] += count
            daily[index // 24] += count
        return Baseline(
            per_day=(sum(daily) + 1) / (days + 1),
            day_dispersion=_dispersion(daily),
            hour_dispersion=_dispersion(hours),
            days=days,
        )

    def shape(self, at: datetime) -> Shape:
        """The week's and the day's shape of all stories over the baseline days."""
        day = at.date()
        if day not in self._shapes:
            end = _midnight(at)
            start = end - self.settings.baseline_days * DAY
            hourly = self.store.hourly_stories(ALL, start, end)
            by_weekday, weekdays_seen, by_hour = [0] * 7, [0] * 7, [0] * 24
            for i in range(self.settings.baseline_days):
                weekdays_seen[(start + i * DAY).weekday()] += 1
            for stamp, count in hourly.items():
                moment = datetime.fromisoformat(stamp + ":00").replace(tzinfo=UTC)
                by_weekday[moment.weekday()] += count
                by_hour[moment.hour] += count
            total = sum(by_hour)
            per_day = [(by_weekday[w] + 1) / (weekdays_seen[w] + 1) for w in range(7)]
            mean = sum(per_day) / 7
            self._shapes[day] = Shape(
                weekday=tuple(v / mean for v in per_day),
                hour=tuple(24 * (by_hour[h] + 1) / (total + 24) for h in range(24)),
            )
        return self._shapes[day]

    # -- breaking --------------------------------------------------------------------------

    def _breaking_story(self, story: str, at: datetime) -> list[Signal]:
        settings = self.settings
        series = f"story:{story}"
        if self.store.last_signal("breaking", series) is not None:
            return []
        window = timedelta(seconds=settings.breaking_window)
        count = self.store.outlets_between(story, at - window, at)
        if count < settings.min_outlets:
            return []
        base = self.breaking_baseline(at)
        if base is None:
            return []
        mean, dispersion = base
        # What is judged is the outlets the story gained: in its first window, the first
        # outlet is the story itself; later, every outlet in the window is a gain.
        began = self.store.outlets_between(story, at - 10 * 365 * DAY, at - window) == 0
        p = tail(count - 1 if began else count, mean, dispersion)
        if p >= settings.threshold:
            return []
        actors = tuple(s.removeprefix("actor:") for s in self.store.story_series(story, "actor:"))
        return [
            Signal(kind="breaking", at=at, series=series, actors=actors, story=story,
                   count=count, baseline=mean + 1, p=p,
                   window=f"{settings.breaking_window // 3600}h",
                   history_days=settings.baseline_days)
        ]  # fmt: skip

    def breaking_baseline(self, at: datetime) -> tuple[float, float] | None:
        """Mean and dispersion of the outlets stories gained in their first window."""
        day = at.date()
        if day not in self._breaking:
            self._breaking[day] = None
            began = self.store.series_began(ALL)
            if began is not None and at - began >= timedelta(seconds=self.settings.min_history):
                end = _midnight(at)
                start = end - self.settings.baseline_days * DAY
                counts = self.store.early_outlets(start, end, self.settings.breaking_window)
                if len(counts) >= MIN_BREAKING_STORIES:
                    gained = [c - 1 for c in counts]
                    mean = max(sum(gained) / len(gained), 1 / len(gained))
                    self._breaking[day] = (mean, _dispersion(gained))
        return self._breaking[day]


def run_signals(store: Store, settings: SignalSettings) -> list[Signal]:
    """The signals stage of a tick: everything stored since the last run, through the
    detectors."""
    return Detector(store, settings).run()


# -- words for people ----------------------------------------------------------------------


def describe(signal: Signal, names: dict[str, str]) -> str:
    """One line an analyst reads: what changed and the numbers behind it, e.g.
    "Dodik: 14 stories in 24 h vs 2.1 a day over 28 days (p = 2e-07)"."""
    who = " & ".join(names.get(a, a) for a in signal.actors)
    if signal.kind == "surge":
        subject = who or f"rule {names.get(signal.rule or '', signal.rule or '')}"
        usual = f"{signal.per_day:.1f} a day over {signal.history_days} days"
        if signal.window == "1h":
            return (f"{subject}: {signal.count} stories in the last hour, {signal.baseline:.1f} "
                    f"expected ({usual}) (p = {signal.p:.0e})")  # fmt: skip
        return f"{subject}: {signal.count} stories in 24 h vs {usual} (p = {signal.p:.0e})"
    if signal.kind == "breaking":
        return (
            f"Breaking: “{signal.title or signal.story}” — {signal.count} outlets in "
            f"{signal.window} vs {signal.baseline:.1f} for a usual story (p = {signal.p:.0e})"
        )
    days = signal.window.rstrip("d")
    if signal.kind == "first-pair":
        return f"First together in {days} days: {who} in “{signal.title or signal.story}”"
    return f"First mention in {days} days: {who} in “{signal.title or signal.story}”"


def actor_names(ruleset: RuleSet | None) -> dict[str, str]:
    """Actor ids to the short name an analyst knows them by ("Milorad Dodik")."""
    if ruleset is None:
        return {}
    return {a.id: a.name.split(" (")[0] for a in ruleset.actors.values()}


def relevant(signals: Iterable[Signal], keep_rule: Callable[[str], bool]) -> list[Signal]:
    """Signals for a message covering some rules: every actor signal, and rule surges of
    the rules it covers."""
    return [s for s in signals if s.rule is None or keep_rule(s.rule)]


ORDER = {"surge": 0, "breaking": 1, "first-pair": 2, "first-mention": 3}
MAX_CHANGES = 12  # lines of "What changed" at the top of a digest


def what_changed(
    store: Store, digest: DigestSettings, ruleset: RuleSet | None, now: datetime | None
) -> list[str]:
    """The "What changed" lines of a digest: signals raised since its last message (or in
    the last day), surges first, each with the numbers behind it."""
    from monitor.digest import selects  # the digest imports this module

    moment = now or datetime.now(UTC)
    sent = store.digest_times(digest.name, moment - 7 * DAY)
    since = sent[-1] if sent else moment - DAY
    found = relevant(store.signals(since), lambda rule: selects(digest, rule, ruleset))
    found.sort(key=lambda s: (ORDER[s.kind], -s.count, s.at))
    names = actor_names(ruleset)
    lines = [describe(s, names) for s in found[:MAX_CHANGES]]
    if len(found) > MAX_CHANGES:
        lines.append(f"… and {len(found) - MAX_CHANGES} more (monitor trends)")
    return lines
