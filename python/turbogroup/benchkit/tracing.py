"""``python -m turbogroup bench --tracing``: dispatch with a tracer's Celery
integration on, Celery's group against turbogroup's, on Redis and, when it
answers, RabbitMQ.

Each tracer patches Celery or connects its signals for the whole process,
so every (tracer, implementation) pair runs in a fresh interpreter
(``python -m turbogroup.benchkit.tracing TRACER IMPL N ROUNDS BROKER QUEUE``),
the tracer set up before ``turbogroup.install()``:

- ``opentelemetry``: ``CeleryInstrumentor`` with a ``BatchSpanProcessor``
  exporting to memory, the group dispatched inside a span; each message
  must carry ``traceparent``.
- ``sentry``: ``sentry_sdk.init`` with ``CeleryIntegration``, a transport
  that drops events, the group dispatched inside a transaction; each
  message must carry ``sentry-trace`` and ``baggage``.

A round whose queue does not hold N messages, each with the tracer's
headers, is reported as failed rather than timed.

A third interpreter times the tracer alone (``tracer_alone.py``): what it
does per message when nothing is published, which no dispatch that runs it
per message, as Celery does, can go below. Celery's time over it is the
``bound`` column: the most any such dispatch could gain here.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from contextlib import AbstractContextManager
from typing import Any

from turbogroup.publish.report import collected_reports

TRACERS = {"opentelemetry": ("traceparent",), "sentry": ("sentry-trace", "baggage")}
HEADER = [
    "tracer", "broker", "N", "celery s", "turbogroup s", "ratio", "tracer alone s", "bound",
    "built by turbogroup/Celery",
]  # fmt: skip


def _opentelemetry() -> Any:
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(InMemorySpanExporter()))
    CeleryInstrumentor().instrument(tracer_provider=provider)
    tracer = provider.get_tracer("turbogroup-bench")
    return lambda: tracer.start_as_current_span("dispatch")


def _sentry() -> Any:
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.transport import Transport

    class Dropping(Transport):
        def capture_envelope(self, envelope: Any) -> None:
            del envelope  # nothing leaves the machine

    sentry_sdk.init(
        dsn="http://key@127.0.0.1:9/1",
        transport=Dropping,
        traces_sample_rate=1.0,
        integrations=[CeleryIntegration()],
        default_integrations=False,
    )
    return lambda: sentry_sdk.start_transaction(name="dispatch", op="bench")


def measure(tracer: str, impl: str, n: int, rounds: int, broker: str, queue: str) -> dict:
    """The rounds of one (tracer, implementation) pair, in this process
    (``alone``: the tracer's own work per message, nothing published)."""
    traced: Any = {"opentelemetry": _opentelemetry, "sentry": _sentry}[tracer]()
    if impl == "alone":
        from turbogroup.benchkit.tracer_alone import time_alone

        return {"seconds": time_alone(tracer, traced, n, rounds), "failures": [], "built": None}
    from celery import Celery
    from celery.canvas import group as celery_group

    import turbogroup

    turbogroup.install()
    app = Celery("tg_tracing_bench", broker=broker, set_as_current=False)
    app.conf.task_default_queue = queue
    add = app.task(name="tg_tracing_bench.add", shared=False)(_add)
    group = celery_group if impl == "celery" else turbogroup.group
    queued = RedisQueue(broker, queue) if broker.startswith("redis") else AmqpQueue(app, queue)
    seconds: list[float] = []
    failures: list[str] = []
    try:
        with collected_reports() as reports:
            for _ in range(rounds):
                queued.purge()
                sig = group([add.s(i, i) for i in range(n)], app=app)
                span: AbstractContextManager[Any] = traced()
                with span:
                    t0 = time.perf_counter()
                    sig.apply_async()
                    elapsed = time.perf_counter() - t0
                headers = queued.take_headers()
                carried = sum(all(h in each for h in TRACERS[tracer]) for each in headers)
                if len(headers) != n or carried != n:
                    failures.append(f"{len(headers)} queued, {carried} with {TRACERS[tracer]}")
                else:
                    seconds.append(elapsed)
    finally:
        queued.remove()
    built = [(r.by_engine, r.by_celery) for r in reports]
    return {"seconds": seconds, "failures": failures, "built": built[-1] if built else None}


def _add(x: int, y: int) -> int:
    return x + y


class RedisQueue:
    """The bench's queue on a Redis broker: a list."""

    def __init__(self, broker: str, queue: str) -> None:
        import redis

        self.client, self.queue = redis.Redis.from_url(broker), queue

    def purge(self) -> None:
        self.client.delete(self.queue)

    def take_headers(self) -> list[dict[str, Any]]:
        raw = self.client.lrange(self.queue, 0, -1)
        self.client.delete(self.queue)
        return [json.loads(m)["headers"] for m in raw]

    def remove(self) -> None:
        self.purge()
        self.client.close()


class AmqpQueue:
    """The bench's queue on RabbitMQ: declared as Celery declares the
    app's default queue, deleted with its exchange at the end."""

    def __init__(self, app: Any, queue: str) -> None:
        self.connection = app.connection_for_write()
        self.channel = self.connection.channel()
        self.queue = queue
        app.amqp.queues[queue].bind(self.channel).declare()

    def purge(self) -> None:
        self.channel.queue_purge(self.queue)

    def take_headers(self) -> list[dict[str, Any]]:
        headers = []
        while (message := self.channel.basic_get(self.queue, no_ack=True)) is not None:
            headers.append(message.properties.get("application_headers") or {})
        return headers

    def remove(self) -> None:
        self.channel.queue_delete(self.queue)
        self.channel.exchange_delete(self.queue)
        self.connection.close()


def run_tracing(n: int, rounds: int, brokers: list[str], tag: str) -> list[list[str]]:
    """One table row per tracer and broker: best round of each side and
    the ratio."""
    return [
        _row(tracer, broker, n, rounds, f"{tag}-{tracer}")
        for tracer in TRACERS
        for broker in brokers
    ]


def _row(tracer: str, broker: str, n: int, rounds: int, queue: str) -> list[str]:
    sides = {}
    for impl in ("celery", "turbogroup", "alone"):
        out = subprocess.run(
            [sys.executable, "-m", "turbogroup.benchkit.tracing",
             tracer, impl, str(n), str(rounds), broker, queue],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        sides[impl] = json.loads(out.stdout.splitlines()[-1])
    celery_s = min(sides["celery"]["seconds"], default=None)
    turbo_s = min(sides["turbogroup"]["seconds"], default=None)
    alone_s = min(sides["alone"]["seconds"])
    ratio = f"{celery_s / turbo_s:.1f}x" if celery_s and turbo_s else "-"
    bound = f"{celery_s / alone_s:.1f}x" if celery_s else "-"
    failed = "; ".join(f"{i}: {f}" for i in sides for f in sides[i]["failures"])
    built = sides["turbogroup"]["built"]
    return [
        tracer, broker.partition(":")[0], str(n),
        f"{celery_s:.3f}" if celery_s else "failed",
        f"{turbo_s:.3f}" if turbo_s else "failed",
        ratio if not failed else f"{ratio} ({failed})",
        f"{alone_s:.3f}",
        bound,
        f"{built[0]}/{built[1]}" if built else "Celery's path",
    ]  # fmt: skip


if __name__ == "__main__":
    tracer_name, impl_name, size, count, broker_url, queue_name = sys.argv[1:7]
    result = measure(tracer_name, impl_name, int(size), int(count), broker_url, queue_name)
    print(json.dumps(result))
