"""An optional, bounded memo of the emulator's per-text work: token counts and vectors.

The emulator's CPU stands in for work the real service does on its own machines; when the emulator
runs in the same process as the client under test (benchmarks), that CPU would otherwise be charged
to the client. Results are pure functions of (text, model, dimensions), so memoising them changes
no answer. Off by default (`entries=0`); least recently used entries are dropped first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

V = TypeVar("V")


class Memo:
    """A thread-safe LRU of at most `entries` values per kind (0: remember nothing)."""

    def __init__(self, entries: int = 0) -> None:
        self.entries = entries
        self._lock = threading.Lock()
        self._data: OrderedDict[Hashable, object] = OrderedDict()

    def many(self, keys: Sequence[Hashable], compute: Callable[[list[int]], Sequence[V]]) -> list[V]:
        """The values of `keys`; `compute(indices)` is called once with the indices of the misses."""
        if self.entries <= 0:
            return list(compute(list(range(len(keys)))))
        out: list[object] = [None] * len(keys)
        missing: list[int] = []
        with self._lock:
            for i, key in enumerate(keys):
                value = self._data.get(key)
                if value is None:
                    missing.append(i)
                else:
                    self._data.move_to_end(key)
                    out[i] = value
        if missing:
            fresh = compute(missing)
            with self._lock:
                for i, value in zip(missing, fresh, strict=True):
                    out[i] = value
                    self._data[keys[i]] = value
                while len(self._data) > self.entries:
                    self._data.popitem(last=False)
        return out  # type: ignore[return-value]
