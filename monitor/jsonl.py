"""JSON-lines input for the offline commands (`match`, `cluster`, `trends --from-jsonl`):
one object per line, blank lines skipped, and a bad line an error naming file and line."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

from monitor.errors import MonitorError


def json_records(lines: Iterable[str], name: str) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-empty line of `lines`, read from the file `name`."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise MonitorError(f"{name}:{number}: not valid JSON: {exc}") from None
        if not isinstance(record, dict):
            raise MonitorError(f"{name}:{number}: expected a JSON object")
        yield number, record
