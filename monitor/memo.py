"""A bounded memo of a pure function's answers, keyed by a digest of its input.

A feed that changes is read whole again: most of its items were read the cycle before, and
their language and identity sketch come out the same. Keeping the newest answers, keyed by a
16-byte digest of what they were worked out from (not by the text itself, which would hold
every text read), skips that work for a few megabytes."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Generic, TypeVar

T = TypeVar("T")


def digest(*parts: str) -> bytes:
    """What a memo is keyed by: the parts, unambiguously joined, hashed."""
    joined = "\x00".join(parts).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(joined, digest_size=16).digest()


class Recent(Generic[T]):
    """The newest `size` answers; the oldest is dropped first."""

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        # ordered: dropping the oldest is O(1) (a plain dict's first key is found by
        # scanning past the holes its deletions left)
        self._answers: OrderedDict[bytes, T] = OrderedDict()

    def get(self, key: bytes) -> T | None:
        return self._answers.get(key)

    def put(self, key: bytes, answer: T) -> T:
        if key not in self._answers and len(self._answers) >= self.size:
            self._answers.popitem(last=False)
        self._answers[key] = answer
        return answer

    def __len__(self) -> int:
        return len(self._answers)
