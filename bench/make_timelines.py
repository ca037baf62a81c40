"""Write the signal-evaluation timelines under tests/data/ (deterministic: seeded).

Sixty days of background stories about the Western Balkans pack's actors, at daily volumes
like a regional desk's (about 30 distinct stories a day, fewer at weekends and at night),
each carried by one to several outlets over some hours; then known events: surges of
several sizes, breaking stories, and first mentions and co-occurrences. `dev` is what the
defaults were chosen on; `holdout` (another seed, other actors, sizes and days) was not
looked at until the defaults were fixed.

    python bench/make_timelines.py        # rewrites tests/data/signals_{dev,holdout}.*
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

START = datetime(2026, 9, 1, tzinfo=UTC)
DAYS = 60
OUTLETS = [f"outlet-{n:02d}" for n in range(1, 31)]
NAMES = {
    "vucic": "Vučić", "kurti": "Kurti", "dodik": "Dodik", "djukanovic": "Đukanović",
    "schmidt": "Christian Schmidt", "mickoski": "Mickoski", "brnabic": "Brnabić",
    "rama": "Edi Rama", "lajcak": "Lajčák", "eulex": "EULEX", "kfor": "KFOR", "dacic": "Dačić",
    "vulin": "Vulin", "radoicic": "Radoičić", "osmani": "Vjosa Osmani",
    "serbia": "Serbia's government", "bosnia": "Bosnia and Herzegovina's parliament",
}  # fmt: skip
RATES = {  # background stories a day
    "vucic": 6.0, "kurti": 5.0, "dodik": 2.5, "brnabic": 1.5, "rama": 1.5, "mickoski": 1.2,
    "djukanovic": 1.0, "schmidt": 1.0, "kfor": 1.0, "dacic": 1.0, "lajcak": 0.8, "vulin": 0.7,
    "eulex": 0.6, "serbia": 1.5, "bosnia": 1.0,
}  # fmt: skip
PAIRS = [("vucic", "kurti"), ("vucic", "brnabic"), ("dodik", "schmidt"), ("kurti", "kfor")]
_VOCABULARY = """
harbour budget ministry tariff railway bridge mayor coalition council ballot court reform
pension energy border customs license highway factory loan mine river valley strike union
farmers teachers doctors hospital school campus youth census treaty summit envoy embassy
minority church monastery festival airport tunnel pipeline refinery grid dam lake forest
fire flood drought harvest wheat wine tourism hotel port shipyard fleet airline bank bond
inflation salary price market media newspaper channel journalist editor lawsuit verdict
prosecutor judge police protest rally petition referendum statute decree quota visa passport
permit trade export import subsidy audit scandal contract tender investor startup software
data cable tower stadium museum theatre archive library census vaccine clinic road plant
metro tram bus tax fund grant donor agency office cabinet deputy speaker assembly session
motion
"""
WORDS = _VOCABULARY.split()  # filler that keeps two stories about one actor apart
HOURS = [0.2, 0.1, 0.1, 0.1, 0.2, 0.5, 1.0, 1.6, 2.0, 2.2, 2.2, 2.0, 1.8, 1.8, 1.8, 1.7, 1.6,
         1.5, 1.4, 1.2, 1.0, 0.8, 0.5, 0.3]  # fmt: skip


class Timeline:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.items: list[dict] = []
        self.count = 0

    def words(self, n: int) -> str:
        return " ".join(self.rng.sample(WORDS, n))

    def story(self, actors: list[str], at: datetime, outlets: int, spread_hours: float,
              title: str = "", summary: str = "") -> None:  # fmt: skip
        self.count += 1
        names = " and ".join(NAMES.get(a, a) for a in actors)
        title = title or f"{names} {self.words(7)}"
        summary = summary or f"{names} {self.words(12)}."
        for n, source in enumerate(self.rng.sample(OUTLETS, outlets)):
            when = at + timedelta(hours=0 if n == 0 else self.rng.uniform(0, spread_hours))
            self.items.append({
                "id": f"s{self.count}-{n}", "title": title, "summary": summary,
                "published": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "source": source,
                "url": f"https://{source}.example/{self.count}",
            })  # fmt: skip

    def moment(self, day: int) -> datetime:
        hour = self.rng.choices(range(24), HOURS)[0]
        return START + timedelta(days=day, hours=hour, minutes=self.rng.randrange(60))

    def outlets(self) -> int:
        return 1 + min(self.rng.choices(range(6), [55, 25, 11, 5, 3, 1])[0], 5)

    def background(self, quiet: set[str]) -> None:
        for day in range(DAYS):
            weekday = (START + timedelta(days=day)).weekday()
            scale = 0.6 if weekday >= 5 else 1.0
            for actor, rate in RATES.items():
                if actor in quiet:
                    continue
                for _ in range(_poisson(self.rng, rate * scale)):
                    self.story([actor], self.moment(day), self.outlets(), 8)
            for pair in PAIRS:
                for _ in range(_poisson(self.rng, 0.7 * scale)):
                    self.story(list(pair), self.moment(day), self.outlets(), 8)

    def surge(self, actor: str, day: int, hour: int, extra: int, hours: float) -> dict:
        at = START + timedelta(days=day, hours=hour)
        for _ in range(extra):
            when = at + timedelta(hours=self.rng.uniform(0, hours))
            self.story([actor], when, self.outlets(), 4)
        return {"kind": "surge", "actors": [actor], "at": _iso(at), "size": extra}

    def breaking(self, actor: str, day: int, hour: int, outlets: int, hours: float) -> dict:
        at = START + timedelta(days=day, hours=hour)
        self.story([actor], at, outlets, hours)
        return {"kind": "breaking", "actors": [actor], "at": _iso(at), "size": outlets}

    def first(self, kind: str, actors: list[str], day: int, title: str, summary: str) -> dict:
        at = START + timedelta(days=day, hours=10)
        self.story(actors, at, 2, 3, title=title, summary=summary)
        return {"kind": kind, "actors": sorted(actors), "at": _iso(at), "size": 1}


def _poisson(rng: random.Random, mean: float) -> int:
    count, total = 0, rng.expovariate(1.0)
    while total < mean:
        count += 1
        total += rng.expovariate(1.0)
    return count


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def dev() -> Timeline:
    t = Timeline(17)
    t.background(quiet={"radoicic"})
    t.events = [
        t.surge("dodik", 30, 9, 6, 6),
        t.surge("djukanovic", 38, 8, 10, 8),
        t.surge("kurti", 45, 7, 15, 8),
        t.surge("schmidt", 50, 11, 4, 6),
        t.surge("vucic", 55, 9, 20, 10),
        t.breaking("kfor", 33, 14, 12, 3),
        t.breaking("eulex", 47, 8, 8, 4),
        t.first(
            "first-pair",
            ["wagner", "serbia"],
            36,
            "Wagner Group recruiters active in Serbia, investigators say",
            "Wagner Group recruiters were seen in Serbia, according to a report.",
        ),
        t.first(
            "first-mention",
            ["radoicic"],
            41,
            "Radoičić seen at a border crossing",
            "Milan Radoičić was seen at a crossing, police sources say.",
        ),
    ]
    return t


def holdout() -> Timeline:
    t = Timeline(2026)
    t.background(quiet={"osmani"})
    t.events = [
        t.surge("mickoski", 27, 10, 5, 5),
        t.surge("rama", 34, 8, 8, 6),
        t.surge("brnabic", 40, 9, 12, 8),
        t.surge("dodik", 48, 12, 18, 10),
        t.surge("lajcak", 53, 9, 3, 4),
        t.breaking("dacic", 31, 10, 10, 3),
        t.breaking("kurti", 44, 16, 7, 5),
        t.breaking("vulin", 56, 9, 15, 6),
        t.first(
            "first-pair",
            ["wagner", "bosnia"],
            38,
            "Wagner Group fighters trained in Bosnia and Herzegovina, court hears",
            "Wagner Group fighters from Bosnia and Herzegovina were trained abroad.",
        ),
        t.first(
            "first-mention",
            ["osmani"],
            46,
            "Vjosa Osmani opens the new session",
            "Vjosa Osmani spoke at the opening of the session.",
        ),
    ]
    return t


def main() -> None:
    folder = Path(__file__).resolve().parent.parent / "tests" / "data"
    for name, timeline in (("dev", dev()), ("holdout", holdout())):
        items = sorted(timeline.items, key=lambda i: i["published"])
        lines = [json.dumps(i, ensure_ascii=False) for i in items]
        (folder / f"signals_{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        events = json.dumps(timeline.events, indent=1, ensure_ascii=False)
        (folder / f"signals_{name}_events.json").write_text(events + "\n", encoding="utf-8")
        print(f"{name}: {len(items)} items, {timeline.count} stories, "
              f"{len(timeline.events)} events")  # fmt: skip


if __name__ == "__main__":
    main()
