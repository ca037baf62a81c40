"""`selectors = "auto"` against hand-made truth: precision and recall of article links per page.

    .venv/bin/python bench/bench_autolinks.py

Pages and truth: tests/data/pages/homepages/truth.json (real saved homepages from public test
trees, and the hand-written list pages of the tests). For comparison, the links that
`sources discover`'s selector inference picks from the same pages.
"""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

from monitor.articlelinks import article_key, article_links
from monitor.discover import infer_page
from monitor.pages import page_soup

PAGES = Path(__file__).resolve().parent.parent / "tests" / "data" / "pages"


def load(case: dict) -> bytes:
    body = (PAGES / case["file"]).read_bytes()
    return gzip.decompress(body) if case["file"].endswith(".gz") else body


def precision_recall(found: set[str], wanted: set[str]) -> tuple[float, float]:
    found, wanted = {u.rstrip("/") for u in found}, {u.rstrip("/") for u in wanted}
    hits = len(found & wanted)
    return (hits / len(found) if found else 0.0), (hits / len(wanted) if wanted else 0.0)


def auto(case: dict) -> set[str]:
    soup = page_soup(load(case), case.get("content_type", ""))
    return {v.url for v in article_links(soup, case["base"])}


def inferred(case: dict) -> set[str]:
    proposal = infer_page(page_soup(load(case), case.get("content_type", "")), case["base"])
    return {article_key(e.link) for e in proposal.entries} if proposal else set()


def run() -> dict[str, dict[str, tuple[float, float]]]:
    truth = json.loads((PAGES / "homepages" / "truth.json").read_text(encoding="utf-8"))
    return {
        name: {way.__name__: precision_recall(way(case), set(case["articles"]))
               for way in (auto, inferred)}
        for name, case in truth.items()
    }  # fmt: skip


def main() -> None:
    started = time.perf_counter()
    results = run()
    elapsed = time.perf_counter() - started
    print(f"{'page':28} {'auto P':>7} {'auto R':>7} {'infer P':>8} {'infer R':>8}")
    for name, ways in results.items():
        (ap, ar), (ip, ir) = ways["auto"], ways["inferred"]
        print(f"{name:28} {ap:7.2f} {ar:7.2f} {ip:8.2f} {ir:8.2f}")
    n = len(results)
    ways = ("auto", "inferred")
    means = [sum(r[w][i] for r in results.values()) / n for w in ways for i in (0, 1)]
    print(f"{'mean':28} {means[0]:7.2f} {means[1]:7.2f} {means[2]:8.2f} {means[3]:8.2f}")
    print(f"{n} pages in {elapsed:.1f} s (both ways)")


if __name__ == "__main__":
    main()
