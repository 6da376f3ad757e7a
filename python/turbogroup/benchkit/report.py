"""What a bench run measured, and the tables printed from it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from turbogroup.benchkit.timing import Timing

LIBRARIES = ("celery", "turbogroup")


@dataclass
class Report:
    """Everything measured, keyed the way the tables read it."""

    rounds: int
    # (library, transport) -> one Timing per N, increasing N
    dispatch: dict[tuple[str, str], list[Timing]] = field(default_factory=dict)
    # transport -> library -> peak RSS growth (KiB) at the largest N
    rss: dict[str, dict[str, int | None]] = field(default_factory=dict)
    # (operation, library) -> one Timing per N
    collect: dict[tuple[str, str], list[Timing]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def transports(self) -> list[str]:
        return list(dict.fromkeys(t for lib, t in self.dispatch if lib in LIBRARIES))


def us(timing: Timing | None) -> str:
    """``best (median)`` µs per task, or why there is no number."""
    if timing is None:
        return "-"
    if not timing.ok:
        return timing.status()
    return f"{timing.best_us:.1f} ({timing.median_us:.1f})"


def ratio(theirs: Timing | None, ours: Timing | None) -> str:
    if theirs is None or ours is None or not (theirs.ok and ours.ok):
        return "-"
    return f"{theirs.best_us / ours.best_us:.2f}x"


def queued(timing: Timing | None) -> str:
    count = None if timing is None or not timing.ok else timing.queued_on_return
    return "-" if count is None else f"{count:,}"


def at(timings: list[Timing], n: int) -> Timing | None:
    return next((t for t in timings if t.n == n), None)


def row(cells: list[str], widths: list[int]) -> str:
    # first column left-aligned (a name), the rest right-aligned (numbers)
    first, *rest = cells
    numbers = "".join(f"{c:>{w}}" for c, w in zip(rest, widths[1:]))
    return f"{first:<{widths[0]}}{numbers}".rstrip()


def print_table(title: str, header: list[str], rows: list[list[str]], out: Callable) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) + 2 for i in range(len(header))]
    out(f"\n{title}")
    out(row(header, widths))
    for cells in rows:
        out(row(cells, widths))


def dispatch_rows(report: Report, sizes: list[int]) -> list[list[str]]:
    rows = []
    for transport in report.transports():
        celery = report.dispatch[("celery", transport)]
        turbo = report.dispatch[("turbogroup", transport)]
        for n in sizes:
            c, t = at(celery, n), at(turbo, n)
            rows.append(
                [transport, f"{n:,}", us(c), us(t), ratio(c, t), f"{queued(c)} / {queued(t)}"]
            )
    return rows


def peer_rows(report: Report, sizes: list[int]) -> list[list[str]]:
    rows = []
    for (lib, transport), timings in report.dispatch.items():
        if lib in LIBRARIES:
            continue
        turbo = report.dispatch.get(("turbogroup", transport), [])
        for n in sizes:
            p = at(timings, n)
            rows.append([lib, transport, f"{n:,}", us(p), ratio(p, at(turbo, n)), queued(p)])
    return rows


def rss_rows(report: Report) -> list[list[str]]:
    def mib(kib: int | None) -> str:
        return "-" if kib is None else f"{kib / 1024:.1f}"

    return [
        [transport, mib(by_lib.get("celery")), mib(by_lib.get("turbogroup"))]
        for transport, by_lib in report.rss.items()
    ]


def collect_rows(report: Report, sizes: list[int]) -> list[list[str]]:
    rows = []
    # Labels like "get (redis)", in the order they were measured.
    for op in dict.fromkeys(label for label, _ in report.collect):
        celery = report.collect.get((op, "celery"), [])
        turbo = report.collect.get((op, "turbogroup"), [])
        for n in sizes:
            c, t = at(celery, n), at(turbo, n)
            rows.append([op, f"{n:,}", us(c), us(t), ratio(c, t)])
    return rows


def failure_notes(report: Report) -> list[str]:
    notes = []
    for (lib, where), timings in [*report.dispatch.items(), *report.collect.items()]:
        for t in timings:
            reason = t.skipped or t.error
            if reason:
                notes.append(f"{where} {lib} N={t.n:,}: {t.status()}: {reason}")
    return notes


def print_report(report: Report, sizes: list[int], out: Callable = print) -> None:
    best = f"best (median) of {report.rounds} round{'s' if report.rounds > 1 else ''}"
    if report.transports():
        print_table(
            f"Dispatch of a pre-built group (apply_async only), µs per task, {best}",
            ["transport", "N", "celery", "turbogroup", "celery/turbo", "queued on return c / t"],
            dispatch_rows(report, sizes),
            out,
        )
    if report.rss:
        print_table(
            f"Client peak RSS growth during one N={sizes[-1]:,} dispatch, MiB (fresh process;"
            " memory:// holds the queue in-process)",
            ["transport", "celery", "turbogroup"],
            rss_rows(report),
            out,
        )
    peer = peer_rows(report, sizes)
    if peer:
        print_table(
            f"Peers on the same broker (raw-amqp: py-amqp publishing Celery's messages, "
            f"prebuilt, written continuously with confirms drained as they arrive; "
            f"raw-redis: redis-py pushing Celery's envelopes, prebuilt, 1,000 per LPUSH, "
            f"all in one pipeline: each broker's limit), dispatch call only, "
            f"µs per task, {best}",
            ["library", "broker", "N", "µs/task", "peer/turbo", "queued on return"],
            peer,
            out,
        )
    if report.collect:
        print_table(
            f"Collection of N stored results, group restored by app.GroupResult.restore "
            f"(result backend in brackets), µs per result, {best}",
            ["operation", "N", "celery", "turbogroup", "celery/turbo"],
            collect_rows(report, sizes),
            out,
        )
    for note in [*failure_notes(report), *report.notes]:
        out(f"note: {note}")
