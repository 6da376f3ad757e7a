"""Progress reporting for long collections: ``on_progress(done, total)``,
or ``progress=True`` for a tqdm bar (when tqdm is installed)."""

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
