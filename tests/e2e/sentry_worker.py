"""A group dispatched inside a Sentry transaction and run by a real worker
in the same process, sentry-sdk's CeleryIntegration on (it patches Celery
for the whole process, hence a fresh interpreter):
``python -m tests.e2e.sentry_worker REDIS_URL PREFIX IMPL N``.

IMPL is ``celery`` (Celery's own group) or ``turbogroup`` (``install()``).
Prints one JSON object: the dispatching transaction's trace id, what each
task saw of its message's ``sentry-trace`` header, the trace context of
the transaction the worker made for each task, and the dispatch reports.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from tests.conftest import REDIS_BACKEND_DB, REDIS_BROKER_DB
from tests.sentry import init_sentry

TRANSACTIONS: list[dict[str, Any]] = []


def _task_id_of(event: dict[str, Any]) -> str | None:
    """The task a worker's transaction ran (the dispatching transaction's
    publish spans name their task ids too: not those)."""
    if event["contexts"]["trace"].get("op") != "queue.task.celery":
        return None
    for span in event.get("spans", ()):
        task_id = (span.get("data") or {}).get("messaging.message.id")
        if task_id:
            return str(task_id)
    return None


def main(redis_url: str, prefix: str, impl: str, n: int) -> None:
    sentry_sdk = init_sentry(TRANSACTIONS)
    import celery.contrib.testing.tasks  # noqa: F401 - the ping task start_worker uses
    from celery import Celery
    from celery.canvas import group as celery_group
    from celery.contrib.testing.worker import start_worker

    import turbogroup
    from turbogroup.publish.report import collected_reports

    if impl == "turbogroup":
        turbogroup.install()
    options = {"global_keyprefix": prefix}
    app = Celery("tg_sentry_worker", set_as_current=False)
    app.conf.update(
        broker_url=f"{redis_url}/{REDIS_BROKER_DB}",
        result_backend=f"{redis_url}/{REDIS_BACKEND_DB}",
        broker_transport_options=options,
        result_backend_transport_options=options,
        broker_connection_retry_on_startup=False,
        worker_hijack_root_logger=False,
    )

    @app.task(name="tg_sentry_worker.add", shared=False, bind=True)
    def add(self: Any, x: int, y: int) -> Any:
        return [x + y, (self.request.headers or {}).get("sentry-trace")]

    group = celery_group if impl == "celery" else turbogroup.group
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=20):
        with collected_reports() as reports:
            with sentry_sdk.start_transaction(name="dispatch", op="test") as transaction:
                result = group([add.s(i, i) for i in range(n)], app=app).apply_async()
                trace_id = transaction.trace_id
        values = result.get(timeout=60)
        ids = [r.id for r in result.results]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # the last task's transaction ends after its result
            if sum(1 for e in TRANSACTIONS if _task_id_of(e) in ids) >= n:
                break
            time.sleep(0.05)
    worker = {}
    for event in TRANSACTIONS:
        task_id = _task_id_of(event)
        if task_id in ids:
            trace = event["contexts"]["trace"]
            worker[task_id] = {
                "trace_id": trace.get("trace_id"),
                "parent_span_id": trace.get("parent_span_id"),
                "name": event.get("transaction"),
            }
    print(
        json.dumps(
            {
                "trace_id": trace_id,
                "ids": ids,
                "values": [v for v, _ in values],
                "headers": [h for _, h in values],
                "worker": worker,
                "reports": [{"by_engine": r.by_engine, "by_celery": r.by_celery} for r in reports],
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
