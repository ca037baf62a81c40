"""Article text against expected text: token precision, recall and F1, empty pages, time.

    .venv/bin/python bench/bench_fulltext.py [DIR]

DIR holds `ground-truth.json` ({key: {"url", "articleBody"}}) and the pages as
`KEY.html.gz` or `html/KEY.html.gz`: the layout of the Article Extraction Benchmark (181 real
news and blog pages with their article text, MIT licence) and of the 24 of its pages kept in
tests/data/pages/articles/ (the default).
"""

from __future__ import annotations

import gzip
import json
import re
import sys
import time
from collections import Counter
from pathlib import Path

from monitor.fulltext import extract_article

DEFAULT = Path(__file__).resolve().parent.parent / "tests" / "data" / "pages" / "articles"


def tokens(text: str) -> Counter[str]:
    return Counter(re.findall(r"\w+", text.lower()))


def scores(got: str, want: str) -> tuple[float, float, float]:
    """Token precision, recall and F1 of `got` against `want` (0 for an empty side)."""
    found, expected = tokens(got), tokens(want)
    common = sum((found & expected).values())
    if not common:
        return 0.0, 0.0, 0.0
    precision, recall = common / sum(found.values()), common / sum(expected.values())
    return precision, recall, 2 * precision * recall / (precision + recall)


def page(folder: Path, key: str) -> bytes:
    for path in (folder / f"{key}.html.gz", folder / "html" / f"{key}.html.gz"):
        if path.exists():
            return gzip.decompress(path.read_bytes())
    raise FileNotFoundError(f"{key}.html.gz in {folder}")


def run(folder: Path) -> dict[str, float]:
    truth = json.loads((folder / "ground-truth.json").read_text(encoding="utf-8"))
    totals = [0.0, 0.0, 0.0]
    empty = 0
    elapsed = 0.0
    for key, expected in truth.items():
        body = page(folder, key)
        started = time.perf_counter()
        text = extract_article(body, "text/html", expected["url"]).text
        elapsed += time.perf_counter() - started
        empty += not text
        for i, value in enumerate(scores(text, expected["articleBody"])):
            totals[i] += value
    n = len(truth)
    return {"pages": n, "precision": totals[0] / n, "recall": totals[1] / n,
            "f1": totals[2] / n, "empty": empty, "ms_per_page": 1000 * elapsed / n}  # fmt: skip


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    r = run(folder)
    print(
        f"{r['pages']:.0f} pages: precision {r['precision']:.3f}, recall {r['recall']:.3f}, "
        f"F1 {r['f1']:.3f}, {r['empty']:.0f} empty, {r['ms_per_page']:.0f} ms a page"
    )


if __name__ == "__main__":
    main()
