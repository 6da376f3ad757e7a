"""Progress reporting for long collections and dispatches:
``on_progress(done, total)``, or ``progress=True`` for a tqdm bar (when
tqdm is installed)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

ProgressFn = Callable[[int, int], Any]


def progress_reporter(
    progress: bool, on_progress: ProgressFn | None, total: int, desc: str
) -> tuple[ProgressFn | None, Callable[[], None]]:
    """The callback to hand to a collector and the function that closes it."""
    if not progress:
        return on_progress, lambda: None
    try:
        from tqdm import tqdm
    except ImportError:
        bar = None
    else:
        bar = tqdm(total=total, desc=desc, unit="task")

    def report(done: int, total: int) -> None:
        if bar is not None:
            bar.update(done - bar.n)
        else:
            # Without tqdm: a single line rewritten in place on stderr.
            sys.stderr.write(f"\r{desc}: {done}/{total}")
        if on_progress is not None:
            on_progress(done, total)

    def close() -> None:
        if bar is not None:
            bar.close()
        else:
            sys.stderr.write("\n")

    return report, close


class DispatchProgress:
    """``on_sent(done, total)`` for a bulk publisher: messages confirmed
    sent so far. The bar is made at the first report, when the total is
    known (a generator group's size is only known once it is read)."""

    def __init__(self, progress: bool, on_progress: ProgressFn | None) -> None:
        self._progress = progress
        self._on_progress = on_progress
        self._report: ProgressFn | None = None
        self._close: Callable[[], None] | None = None
        self.last: tuple[int, int] | None = None

    def __call__(self, done: int, total: int) -> None:
        if self._close is None:
            self._report, self._close = progress_reporter(
                self._progress, self._on_progress, total, "dispatching"
            )
        self.last = (done, total)
        if self._report is not None:
            self._report(done, total)

    def close(self) -> None:
        if self._close is not None:
            self._close()
