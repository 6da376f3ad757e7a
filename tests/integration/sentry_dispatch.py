"""One group dispatched with sentry-sdk's CeleryIntegration on, in a fresh
interpreter (the integration patches Celery and kombu for the whole
process): ``python -m tests.integration.sentry_dispatch BROKER QUEUE ORDER IMPL N``.

ORDER is ``sentry-first`` (``sentry_sdk.init`` before turbogroup is
imported) or ``turbogroup-first`` (after ``turbogroup.install()``); IMPL is
``celery`` (Celery's own group) or ``turbogroup``. Prints one JSON object:
the queued messages' headers, the transaction's trace id, the dispatch's
seconds and reports.
"""

from __future__ import annotations

import base64
import json
import logging
import sys
import time
from typing import Any


def _init_sentry() -> Any:
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.transport import Transport

    class Dropping(Transport):
        """Events go nowhere: no network."""

        def capture_envelope(self, envelope: Any) -> None:
            del envelope

    sentry_sdk.init(
        dsn="http://key@127.0.0.1:9/1",
        transport=Dropping,
        traces_sample_rate=1.0,
        integrations=[CeleryIntegration()],
        default_integrations=False,
    )
    return sentry_sdk


def main(broker: str, queue: str, order: str, impl: str, n: int) -> None:
    sentry_sdk = _init_sentry() if order == "sentry-first" else None
    import redis
    from celery import Celery
    from celery.canvas import group as celery_group

    import turbogroup

    turbogroup.install()
    if sentry_sdk is None:
        sentry_sdk = _init_sentry()
    reports: list[dict[str, int]] = []

    class Reports(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            report = getattr(record, "turbogroup_dispatch", None)
            if report is not None:
                reports.append({"by_engine": report.by_engine, "by_celery": report.by_celery})

    dispatch_log = logging.getLogger("turbogroup.dispatch")
    dispatch_log.setLevel(logging.DEBUG)
    dispatch_log.addHandler(Reports())
    app = Celery("tg_sentry", broker=broker, set_as_current=False)
    app.conf.task_default_queue = queue

    @app.task(name="tg_sentry.add", shared=False)
    def add(x: int, y: int) -> int:
        return x + y

    group = celery_group if impl == "celery" else turbogroup.group
    client = redis.Redis.from_url(broker)
    client.delete(queue)
    sig = group([add.s(i, i) for i in range(n)], app=app)
    with sentry_sdk.start_transaction(name="dispatch", op="test") as transaction:
        t0 = time.perf_counter()
        sig.apply_async()
        seconds = time.perf_counter() - t0
        trace_id = transaction.trace_id
    raw = client.lrange(queue, 0, -1)[::-1]  # LPUSHed: oldest last
    client.delete(queue)
    headers = [json.loads(m)["headers"] for m in raw]
    bodies = [json.loads(base64.b64decode(json.loads(m)["body"])) for m in raw]
    print(json.dumps({
        "trace_id": trace_id,
        "seconds": seconds,
        "headers": headers,
        "args": [b[0] for b in bodies],
        "reports": reports,
    }))  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
