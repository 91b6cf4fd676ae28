"""Message helpers shared by every tool, so long lists read the same everywhere."""

from __future__ import annotations

from typing import Iterable

__all__ = ["first_items"]


def first_items(items: Iterable, limit: int = 10, sep: str = "; ") -> str:
    """The first ``limit`` items as text joined by ``sep``, then ``"... and M more"`` when
    there are more: ``first_items(["a", "b", "c"], 2, ", ") == "a, b, ... and 1 more"``."""
    items = [str(item) for item in items]
    shown = sep.join(items[:limit])
    if len(items) > limit:
        shown += f"{sep}... and {len(items) - limit} more"
    return shown
