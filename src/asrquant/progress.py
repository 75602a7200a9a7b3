"""Progress bars for long work (calibration clips, layers, data sets), on stderr via rich."""

from __future__ import annotations

import contextlib
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")


def track(items: Iterable[T], enabled: bool, what: str) -> Iterable[T]:
    """``items`` with a transient bar while they are consumed; the items alone when disabled."""
    if not enabled:
        return items
    from rich.progress import track as rich_track

    return rich_track(items, description=what, transient=True)


@contextlib.contextmanager
def bar(description: str, total: int, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """A bar advanced by hand: yields ``advance(n=1)``; a no-op when disabled or not a terminal
    (a log file gets no carriage-return noise)."""
    if not enabled:
        yield lambda n=1: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    if not console.is_terminal:
        yield lambda n=1: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as p:
        task = p.add_task(description, total=total)
        yield lambda n=1: p.advance(task, n)
