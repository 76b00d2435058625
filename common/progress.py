"""Progress display for long runs: a rich progress bar on a terminal, plain periodic lines otherwise (CI logs),
nothing when `REPROZOO_QUIET=1` (the tests set it)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate over `items` showing progress (elapsed and remaining time) on stderr."""
    if os.environ.get("REPROZOO_QUIET") == "1":
        yield from items
        return
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import track as rich_track

        yield from rich_track(items, description=description, total=total, console=Console(stderr=True))
        return
    items = list(items) if total is None else items
    total = len(items) if total is None else total
    start, shown = time.perf_counter(), -1
    for i, item in enumerate(items):
        yield item
        tenth = (10 * (i + 1)) // max(total, 1)
        if tenth != shown:
            shown = tenth
            elapsed = time.perf_counter() - start
            eta = elapsed / (i + 1) * (total - i - 1)
            print(
                f"{description}: {i + 1}/{total}  elapsed {elapsed:.0f} s, ~{eta:.0f} s left",
                file=sys.stderr,
                flush=True,
            )
