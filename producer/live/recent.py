"""De-duplication in bounded memory: the ids of the most recent posts seen."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator


class RecentIds:
    """The last ``capacity`` distinct ids added, the oldest forgotten first."""

    def __init__(self, capacity: int, ids: Iterable[str] = ()):
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()
        for post_id in ids:
            self.add(post_id)

    def add(self, post_id: str) -> bool:
        """Remember ``post_id``; False if it was remembered already (a duplicate)."""
        if post_id in self._ids:
            return False
        self._ids[post_id] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return True

    def __contains__(self, post_id: object) -> bool:
        return post_id in self._ids

    def __iter__(self) -> Iterator[str]:
        """Oldest first: adding them in this order to a new instance rebuilds this one."""
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)
