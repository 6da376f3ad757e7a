"""One group dispatched with ddtrace's Celery integration on, in a fresh
interpreter (``patch(celery=True)`` patches Celery for the whole process):
``python -m tests.integration.ddtrace_dispatch BROKER QUEUE IMPL N``.

IMPL is ``celery`` (Celery's own group) or ``turbogroup``. ddtrace runs
with distributed tracing on (its trace headers in each message) and no
agent: a trace filter keeps the finished spans and drops every trace
before it would be sent. Prints one JSON object: the queued messages'
headers, the dispatching span's ids, the publish spans and the reports.
"""

from __future__ import annotations

import json
import os
import sys


def main(broker: str, queue: str, impl: str, n: int) -> None:
    os.environ["DD_CELERY_DISTRIBUTED_TRACING"] = "true"
    # Nothing listens there (loopback only): the filter drops every trace.
    os.environ["DD_TRACE_AGENT_URL"] = "http://127.0.0.1:9"
    os.environ["DD_INSTRUMENTATION_TELEMETRY_ENABLED"] = "false"
    from ddtrace import patch

    patch(celery=True)
    from ddtrace.trace import TraceFilter, tracer

    finished: list = []

    class Keep(TraceFilter):
        def process_trace(self, trace):  # type: ignore[no-untyped-def]
            finished.extend(trace)

    tracer.configure(trace_processors=[Keep()])

    import redis
    from celery import Celery
    from celery.canvas import group as celery_group

    import turbogroup
    from turbogroup.publish.report import collected_reports

    app = Celery("tg_ddtrace", broker=broker, set_as_current=True)
    app.conf.task_default_queue = queue

    @app.task(name="tg_ddtrace.add", shared=False)
    def add(x: int, y: int) -> int:
        return x + y

    group = celery_group
    if impl == "turbogroup":
        turbogroup.install()
        group = turbogroup.group
    client = redis.Redis.from_url(broker)
    try:
        with collected_reports() as reports, tracer.trace("dispatch") as root:
            group(add.s(i, i) for i in range(n)).apply_async()
        tracer.flush()
        messages = [json.loads(m) for m in client.lrange(queue, 0, -1)[::-1]]
    finally:
        client.delete(queue)
        client.close()
    publishes = [s for s in finished if s.name == "celery.apply"]
    json.dump(
        {
            "root": {"trace_id": str(root.trace_id), "span_id": str(root.span_id)},
            "headers": [m["headers"] for m in messages],
            "spans": [
                {
                    "span_id": str(s.span_id),
                    "trace_id": str(s.trace_id),
                    "parent_id": str(s.parent_id),
                    "finished": s.finished,
                    "task_id": s.get_tag("celery.id"),
                }
                for s in publishes
            ],
            "reports": [{"by_engine": r.by_engine, "by_celery": r.by_celery} for r in reports],
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
