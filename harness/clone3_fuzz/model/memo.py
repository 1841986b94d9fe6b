"""A bounded memo for what a campaign computes again and again (predictions, wire
records, decoded records): a campaign's cases repeat, and its memory must not grow."""

from __future__ import annotations

from typing import Callable, Generic, Hashable, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Memo(Generic[K, V]):
    """Values by key, made on first use; all are forgotten at once when ``capacity`` are
    held (cheaper than tracking which is oldest, and a campaign's working set refills it)."""

    def __init__(self, capacity: int = 1 << 16) -> None:
        self.capacity = capacity
        self._values: dict[K, V] = {}

    def get(self, key: K, make: Callable[[], V]) -> V:
        """The value for ``key``, made by ``make()`` the first time."""
        value = self._values.get(key)
        if value is None:
            if len(self._values) >= self.capacity:
                self._values.clear()
            value = self._values[key] = make()
        return value

    def clear(self) -> None:
        """Forgets every value."""
        self._values.clear()
