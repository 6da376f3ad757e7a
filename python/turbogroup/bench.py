"""``python -m turbogroup bench``: dispatch (and collection) of a group,
``celery.canvas.group`` against ``turbogroup.group`` in the same run, on
every broker that answers, as a table and a plot. Optionally RQ and
Dramatiq on the same Redis, for users choosing a queue.

Every number is measured in this run, so the ratios compare like with
like on this machine. Everything created (queues, exchanges, keys) is named
after one unique tag and removed at the end.
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from typing import Any

from turbogroup.benchkit import collect, dispatch, peers, raw_amqp, raw_redis, shapes, tracing
from turbogroup.benchkit.plot import matplotlib_available, write_plot
from turbogroup.benchkit.report import LIBRARIES, Report, print_report, print_table
from turbogroup.benchkit.timing import Timing, predicted_seconds
from turbogroup.benchkit.transports import (
    DEFAULT_AMQP_URL,
    DEFAULT_REDIS_URL,
    Transport,
    reachable,
)

TRANSPORT_NAMES = ("memory", "redis", "amqp", "amqp-quorum")
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", default="1000,10000", help="group sizes N, comma separated")
    parser.add_argument(
        "--transports",
        default=None,
        help="comma separated among memory,redis,amqp,amqp-quorum "
        "(default: memory,redis, plus amqp when RabbitMQ answers)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per measurement")
    parser.add_argument(
        "--collect",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time GroupResult.get()/completed_count() of stored results on the Redis "
        "result backend, and on the database backend (--database-url)",
    )
    parser.add_argument(
        "--database-url",
        default=DEFAULT_DATABASE_URL,
        help="SQLAlchemy URL of a PostgreSQL database for the database-backend collection "
        "(tables of its own, dropped afterwards); '' to skip",
    )
    parser.add_argument(
        "--peers", action="store_true", help="also time RQ and Dramatiq on the same Redis"
    )
    parser.add_argument(
        "--shapes",
        action="store_true",
        help="instead: every canvas shape (chords, chains, nested, frozen, small groups) "
        "at the largest N, Redis broker and backend, install() and unchanged user code",
    )
    parser.add_argument(
        "--tracing",
        action="store_true",
        help="instead: dispatch at the largest N with OpenTelemetry's and Sentry's Celery "
        "integrations on, Celery against turbogroup, Redis broker (and RabbitMQ); with the "
        "tracer's own time alone, and the bound it sets on any dispatch running it per task",
    )
    parser.add_argument(
        "--rss",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="measure client RSS growth at the largest N (one extra dispatch per library)",
    )
    parser.add_argument("--plot", default="bench-dispatch.png", help="PNG to write")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--amqp-url", default=DEFAULT_AMQP_URL)
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        help="cap on one timed run: a size predicted or found to take longer is skipped",
    )


def parse_sizes(text: str) -> list[int]:
    sizes = sorted({int(part.replace("_", "")) for part in text.split(",") if part.strip()})
    if not sizes or sizes[0] < 1:
        raise ValueError(f"--sizes needs positive integers, got {text!r}")
    return sizes


def progress(message: str) -> None:
    # stderr, so that stdout is only the tables
    print(message, file=sys.stderr, flush=True)


def select_transports(args: argparse.Namespace, tag: str, notes: list[str]) -> list[Transport]:
    urls = {
        "memory": "memory://",
        "redis": args.redis_url,
        "amqp": args.amqp_url,
        "amqp-quorum": args.amqp_url,  # the same broker, a quorum queue
    }
    if args.transports is None:
        names = ["memory", "redis"] + (["amqp"] if reachable(args.amqp_url) else [])
    else:
        names = [name.strip() for name in args.transports.split(",") if name.strip()]
    selected = []
    for name in names:
        if name not in urls:
            raise ValueError(f"unknown transport {name!r} (choose from {TRANSPORT_NAMES})")
        if not reachable(urls[name]):
            notes.append(f"{name}: skipped, nothing answers at {urls[name]}")
            continue
        selected.append(Transport(name, urls[name], f"{tag}-{name}"))
    return selected


def skip_by_prediction(previous: Timing | None, n: int, cap: float | None) -> Timing | None:
    """A Timing marked skipped when the last size predicts more than the cap."""
    estimate = predicted_seconds(previous, n)
    if cap is None or estimate is None or estimate <= cap:
        return None
    return Timing(n, skipped=f"estimated {estimate:.0f} s per run, over {cap:g} s")


def last_ok(timings: list[Timing]) -> Timing | None:
    return next((t for t in reversed(timings) if t.ok), None)


def bench_transport(
    transport: Transport, sizes: list[int], args: argparse.Namespace, report: Report
) -> None:
    series = {lib: report.dispatch.setdefault((lib, transport.name), []) for lib in LIBRARIES}
    app = transport.make_app()
    raw = None
    try:
        for n in sizes:
            # Libraries interleaved per N, so both meet the same broker state.
            for lib in LIBRARIES:
                timing = skip_by_prediction(last_ok(series[lib]), n, args.max_seconds)
                if timing is None:
                    timing = dispatch.run_dispatch(
                        transport, app, lib, n, args.rounds, args.max_seconds, progress
                    )
                    if timing.skipped or timing.error:
                        # An interrupted publish may leave the connection mid-frame.
                        app.close()
                        app = transport.make_app()
                series[lib].append(timing)
            limit = _broker_limit(transport)
            if limit is not None:
                # The broker's own limit, in the same run.
                name, make = limit
                raw = raw or make(transport, app)
                raw_series = report.dispatch.setdefault((name, transport.name), [])
                timing = skip_by_prediction(last_ok(raw_series), n, args.max_seconds)
                if timing is None:
                    timing = peers.run_peer(
                        raw, name, n, args.rounds, args.max_seconds, progress, transport.name
                    )
                raw_series.append(timing)
        if args.rss:
            report.rss[transport.name] = measure_rss(transport, series, args)
    finally:
        if raw is not None:
            raw.close()
        transport.cleanup(app)
        app.close()


def _broker_limit(transport: Transport) -> tuple[str, Any] | None:
    """The plain client that shows the broker's limit: its name and class."""
    if raw_amqp.is_amqp(transport):
        return raw_amqp.NAME, raw_amqp.RawAmqpPeer
    if raw_redis.is_redis(transport):
        return raw_redis.NAME, raw_redis.RawRedisPeer
    return None


def measure_rss(
    transport: Transport, series: dict[str, list[Timing]], args: argparse.Namespace
) -> dict[str, int | None]:
    rss: dict[str, int | None] = {}
    for lib, timings in series.items():
        largest = timings[-1]
        if not largest.ok:
            rss[lib] = None
            continue
        timeout = None if args.max_seconds is None else args.max_seconds + 120
        progress(f"{transport.name} N={largest.n} {lib}: RSS in a fresh process")
        rss[lib] = dispatch.probe_rss_kib(transport, lib, largest.n, timeout)
    return rss


def bench_peers(sizes: list[int], args: argparse.Namespace, tag: str, report: Report) -> None:
    if not reachable(args.redis_url):
        report.notes.append(f"peers: skipped, nothing answers at {args.redis_url}")
        return
    for peer in peers.PEERS:
        if not peers.available(peer):
            report.notes.append(f"{peer}: not installed, skipped (pip install {peer})")
            continue
        series = report.dispatch.setdefault((peer, "redis"), [])
        client = peers.make_peer(peer, args.redis_url, tag)
        try:
            for n in sizes:
                timing = skip_by_prediction(last_ok(series), n, args.max_seconds)
                if timing is None:
                    timing = peers.run_peer(
                        client, peer, n, args.rounds, args.max_seconds, progress
                    )
                series.append(timing)
        finally:
            client.close()


def bench_collect(sizes: list[int], args: argparse.Namespace, tag: str, report: Report) -> None:
    if reachable(args.redis_url):
        collect_from(collect.RedisResults(args.redis_url, tag), sizes, args, report)
    else:
        report.notes.append(f"collect: skipped, nothing answers at {args.redis_url}")
    if not args.database_url:
        return
    if not reachable(args.database_url):
        report.notes.append(f"collect (database): skipped, nothing answers at {args.database_url}")
        return
    try:
        stored = collect.DatabaseResults(args.database_url, tag)
    except ImportError as exc:
        report.notes.append(f"collect (database): skipped, {exc}")
        return
    collect_from(stored, sizes, args, report)


def collect_from(
    stored: collect.StoredResults, sizes: list[int], args: argparse.Namespace, report: Report
) -> None:
    try:
        for n in sizes:
            progress(f"collect N={n} ({stored.backend_name}): storing {n} results")
            saved = (stored.save(stored.store(n)), n)
            for op in collect.OPERATIONS:
                for lib in collect.IMPLS:
                    label = f"{op} ({stored.backend_name})"
                    series = report.collect.setdefault((label, lib), [])
                    timing = skip_by_prediction(last_ok(series), n, args.max_seconds)
                    if timing is None:
                        timing = collect.run_collect(
                            stored, lib, op, saved, args.rounds, args.max_seconds, progress
                        )
                    series.append(timing)
    finally:
        stored.close()


def main(args: argparse.Namespace) -> int:
    try:
        sizes = parse_sizes(args.sizes)
        if args.rounds < 1:
            raise ValueError("--rounds must be at least 1")
        tag = f"tgbench-{uuid.uuid4().hex[:10]}"
        report = Report(rounds=args.rounds)
        transports = select_transports(args, tag, report.notes)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.shapes:
        return bench_shapes(sizes[-1], args, tag)
    if args.tracing:
        return bench_tracing(sizes[-1], args, tag)

    for transport in transports:
        bench_transport(transport, sizes, args, report)
    if args.peers:
        bench_peers(sizes, args, tag, report)
    if args.collect:
        bench_collect(sizes, args, tag, report)

    print_report(report, sizes)
    return write_plot_or_explain(report, args)


def bench_shapes(n: int, args: argparse.Namespace, tag: str) -> int:
    if not reachable(args.redis_url):
        print(f"error: --shapes needs Redis, nothing answers at {args.redis_url}", file=sys.stderr)
        return 2
    transport = Transport("redis", args.redis_url, f"{tag}-redis")
    results = shapes.run_shapes(transport, args.redis_url, tag, n, args.rounds, progress)
    print_table(
        f"Dispatch by canvas shape, N={n} (best of {args.rounds}; Redis broker and backend)",
        shapes.HEADER,
        shapes.shape_rows(results),
        print,
    )
    return 0


def bench_tracing(n: int, args: argparse.Namespace, tag: str) -> int:
    if not reachable(args.redis_url):
        print(f"error: --tracing needs Redis, nothing answers at {args.redis_url}", file=sys.stderr)
        return 2
    brokers = [args.redis_url] + ([args.amqp_url] if reachable(args.amqp_url) else [])
    rows = tracing.run_tracing(n, args.rounds, brokers, tag)
    print_table(
        f"Dispatch with a tracer on, N={n} (best of {args.rounds}; Redis, and RabbitMQ when "
        "it answers)",
        tracing.HEADER,
        rows,
        print,
    )
    return 0


def write_plot_or_explain(report: Report, args: argparse.Namespace) -> int:
    if not args.plot:
        return 0
    if not matplotlib_available():
        print("\nno plot: matplotlib is not installed (pip install 'turbogroup[bench]')")
        return 0
    write_plot(report.dispatch, args.plot, report.rounds, report.collect)
    print(f"\nplot written to {os.path.abspath(args.plot)}")
    return 0
