"""Timed rounds: best/median statistics, a per-run time cap, peak RSS."""

from __future__ import annotations

import resource
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


class RunTimeout(BaseException):
    """A timed run passed ``--max-seconds``.

    A BaseException so that Celery's and kombu's ``except Exception``
    retry loops let it through instead of retrying the publish.
    """


@dataclass
class Timing:
    """The rounds of one (implementation, N) run: seconds and, per round,
    how many messages were in the queue when the call returned."""

    n: int
    seconds: list[float] = field(default_factory=list)
    queued: list[int | None] = field(default_factory=list)
    skipped: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return bool(self.seconds) and self.skipped is None and self.error is None

    @property
    def best_us(self) -> float:
        return min(self.seconds) / self.n * 1e6

    @property
    def median_us(self) -> float:
        return statistics.median(self.seconds) / self.n * 1e6

    @property
    def queued_on_return(self) -> int | None:
        # The smallest over rounds: one round that returned early is enough
        # to show the call does not guarantee the messages are in the queue.
        counts = [q for q in self.queued if q is not None]
        return min(counts) if counts else None

    def status(self) -> str:
        """What to print instead of a number when there is none."""
        if self.skipped is not None:
            return "skipped"
        if self.error is not None:
            return "error"
        return ""


Progress = Callable[[str], None]


def run_rounds(
    n: int,
    rounds: int,
    max_seconds: float | None,
    once: Callable[[], tuple[float, int | None]],
    label: str,
    progress: Progress,
    show_queued: bool = False,
) -> Timing:
    """``rounds`` runs of ``once`` (seconds, messages queued or None).

    A run over the cap marks the size skipped, any other failure is
    reported in the table; either way the remaining rounds are not run.
    """
    timing = Timing(n)
    for r in range(rounds):
        try:
            elapsed, queued = once()
        except RunTimeout:
            timing.skipped = f"one run took over {max_seconds:g} s"
            break
        except Exception as exc:  # reported in the table, the other runs go on
            timing.error = f"{type(exc).__name__}: {exc}"
            break
        timing.seconds.append(elapsed)
        timing.queued.append(queued)
        line = f"{label} round {r + 1}/{rounds}: {elapsed:.3f} s"
        progress(f"{line}, {queued} queued" if show_queued else line)
    return timing


def predicted_seconds(previous: Timing | None, n: int) -> float | None:
    """Time the next, larger size should take, from the last size measured
    (per-task cost grows with N for Celery, so this is a lower bound)."""
    if previous is None or not previous.ok:
        return None
    return previous.best_us * n / 1e6


@contextmanager
def time_cap(seconds: float | None) -> Iterator[None]:
    """Raise RunTimeout in the block after ``seconds`` (SIGALRM, so only in
    the main thread on Unix; elsewhere the cap is the prediction alone).

    An outer SIGALRM timer (pytest-timeout's) is put back afterwards with
    the time it had left.
    """
    if (
        not seconds
        or not hasattr(signal, "setitimer")
        or threading.current_thread() is not threading.main_thread()
    ):
        yield
        return

    def on_alarm(signum: int, frame: object) -> None:
        raise RunTimeout

    started = time.monotonic()
    previous_handler = signal.signal(signal.SIGALRM, on_alarm)
    previous_delay, previous_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_handler)
        if previous_delay:
            left = max(previous_delay - (time.monotonic() - started), 0.001)
            signal.setitimer(signal.ITIMER_REAL, left, previous_interval)


def max_rss_kib() -> int:
    """This process's peak resident set size so far, in KiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak // 1024 if sys.platform == "darwin" else peak


def _proc_status_kib(key: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class PeakRss:
    """Peak RSS growth over a block, in KiB.

    A high-water mark only shows growth past the process's earlier peak
    (imports, building the group), which can hide tens of MiB. On Linux the
    mark is reset first (``clear_refs`` 5) and the peak (VmHWM) is compared
    with the current RSS; elsewhere ``ru_maxrss`` deltas are the best there is.
    """

    def __init__(self) -> None:
        self.reset = self._reset_high_water_mark()
        current = _proc_status_kib("VmRSS") if self.reset else None
        self.before = current if current is not None else max_rss_kib()

    @staticmethod
    def _reset_high_water_mark() -> bool:
        try:
            with open("/proc/self/clear_refs", "w") as clear_refs:
                clear_refs.write("5")
            return True
        except OSError:
            return False

    def growth(self) -> int:
        peak = _proc_status_kib("VmHWM") if self.reset else None
        return (peak if peak is not None else max_rss_kib()) - self.before
