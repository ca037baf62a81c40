"""How often Python's cyclic garbage collector makes full passes while a cycle runs.

A cycle keeps hundreds of thousands of small objects alive until it ends (each item's
identity, texts, keys and story members), and they hold no reference cycles: reference
counting frees them. The collector's full passes scan every one of them again and again;
at 50,000 new items into 200,000 stored they were a third of identity and story assignment
(bench/bench_stories.py). Young garbage (parse trees dropped after a page) is still
collected by the frequent young-generation passes; only what survived into the oldest
generation waits longer for a full pass."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# Full passes at most once per this many passes of the middle generation (Python's default
# is 10): about one per 7 million allocations instead of one per 70,000.
FULL_PASS_EVERY = 1000


@contextmanager
def rare_full_passes() -> Iterator[None]:
    """Within: full collections at most every FULL_PASS_EVERY middle-generation passes."""
    young, middle, full = gc.get_threshold()
    gc.set_threshold(young, middle, max(full, FULL_PASS_EVERY))
    try:
        yield
    finally:
        gc.set_threshold(young, middle, full)
