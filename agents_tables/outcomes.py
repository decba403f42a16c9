"""Which answered messages each partition remembers, bounded: the oldest are forgotten first."""

from __future__ import annotations

from collections import OrderedDict


class RecentKeys:
    """Insertion-ordered set with a capacity; `add` returns the keys that fell out."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._keys: OrderedDict[str, None] = OrderedDict()

    def add(self, key: str) -> list[str]:
        self._keys[key] = None
        self._keys.move_to_end(key)
        evicted = []
        while len(self._keys) > self.capacity:
            evicted.append(self._keys.popitem(last=False)[0])
        return evicted

    def __len__(self) -> int:
        return len(self._keys)
