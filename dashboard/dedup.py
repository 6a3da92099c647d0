"""A bounded memory of recently seen ids: at-least-once delivery may repeat a result."""

from __future__ import annotations

from collections import deque


class RecentIds:
    """Remembers the last ``capacity`` distinct ids; ``add`` tells whether an id is new."""

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._order: deque[str] = deque()
        self._ids: set[str] = set()
        self.capacity = capacity

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, item: str) -> bool:
        return item in self._ids

    def add(self, item: str) -> bool:
        """True when ``item`` was not among the remembered ids (it is remembered from now on)."""
        if item in self._ids:
            return False
        if len(self._order) == self.capacity:
            self._ids.discard(self._order.popleft())
        self._order.append(item)
        self._ids.add(item)
        return True
