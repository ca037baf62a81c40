"""The parse workers: processes that read the documents of big cycles (`prepare.py`: parse,
normalise, identify, match), so that the work per item runs on every core while the main
process looks items up, places them in stories and stores them."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context

from monitor.match import Engine
from monitor.models import FetchResult, Source
from monitor.parse import warm_up
from monitor.prepare import Prepared, pickled_rules, prepare, prepare_with

log = logging.getLogger(__name__)

# Below this many documents to parse, worker processes cost more than they save.
PARALLEL_MIN = 16


class ParsePool:
    """Worker processes that read documents for cycles with many changed feeds: parse,
    normalise, identify and match each item (`prepare.py`), so that the work per item runs
    on every core and the main process only looks up and stores. Workers are started by
    `start` and kept for later cycles until `close`."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._executor: ProcessPoolExecutor | None = None
        self._rules: tuple[Engine, bytes] | None = None  # the rules last sent, pickled

    @staticmethod
    def size(setting: int) -> int:
        """Workers for a `parse_workers` setting: 0 means one per CPU."""
        return setting if setting > 0 else (os.cpu_count() or 1)

    def start(self) -> None:
        if self._executor is None:
            # spawn, not fork: the daemon has threads, and a forked copy of a lock held by
            # another thread would never be released in the child.
            self._executor = ProcessPoolExecutor(
                self.workers,
                mp_context=get_context("spawn"),
                initializer=exit_with_parent,
                initargs=(os.getpid(),),
            )
            for _ in range(self.workers):
                self._executor.submit(warm_up)

    def read_all(
        self, jobs: Sequence[tuple[FetchResult, Source]], engine: Engine, max_text: int
    ) -> Iterator[Read]:
        """Each document prepared, and matched with `engine`'s rules, in the workers: under
        way at once, the results in order as they are taken."""
        self.start()
        assert self._executor is not None
        if self._rules is None or self._rules[0] is not engine:
            self._rules = (engine, pickled_rules(engine.ruleset))
        chunk = max(1, len(jobs) // (self.workers * 4))
        results, sources = [r for r, _ in jobs], [s for _, s in jobs]
        rules, limit = [self._rules[1]] * len(jobs), [max_text] * len(jobs)
        return self._executor.map(prepare, results, sources, rules, limit, chunksize=chunk)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None


Read = Prepared | str
ORPHAN_CHECK_SECONDS = 1.0


def exit_with_parent(parent: int) -> None:
    """Run first in each parse worker: exit as soon as the service that started it is gone.
    A SIGKILLed service runs no clean-up, and a worker blocked on its queue would wait (and
    keep the resource tracker alive) for good; a watch on the parent's pid ends both."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(ORPHAN_CHECK_SECONDS)
        os._exit(0)

    threading.Thread(target=watch, name="orphan-watch", daemon=True).start()


def reading(
    jobs: list[tuple[FetchResult, Source]],
    pool: ParsePool | None,
    engine: Engine,
    max_text: int,
    match_here: bool = False,
) -> Callable[[], list[Read]]:
    """The documents being read: in the workers (and matched there) when there are enough of
    them, else here when asked (and only the new items are matched, later, unless
    `match_here`: then as they are read)."""

    def here() -> list[Read]:
        rules = engine if match_here else None
        return [prepare_with(result, source, rules, max_text) for result, source in jobs]

    if pool is None or len(jobs) < PARALLEL_MIN:
        return here
    pool.start()  # only when enough documents changed: a cycle of 304s needs no workers
    try:
        underway = pool.read_all(jobs, engine, max_text)
    except BrokenProcessPool:
        return _broken(pool, here)

    def from_workers() -> list[Read]:
        try:
            return list(underway)
        except BrokenProcessPool:
            return _broken(pool, here)()

    return from_workers


def _broken(pool: ParsePool, here: Callable[[], list[Read]]) -> Callable[[], list[Read]]:
    """A worker died (out of memory?): these documents are read here instead."""
    log.exception("parse workers failed; parsing in the main process this time")
    pool.close()
    return here
