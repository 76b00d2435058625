"""Progress display for long runs (rich), quiet when `REPROZOO_QUIET=1` (the tests set it)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate over `items` with a rich progress bar (elapsed and remaining time) on stderr."""
    if os.environ.get("REPROZOO_QUIET") == "1":
        yield from items
        return
    from rich.console import Console
    from rich.progress import track as rich_track

    yield from rich_track(items, description=description, total=total, console=Console(stderr=True))
