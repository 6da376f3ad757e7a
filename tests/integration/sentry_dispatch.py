"""One group dispatched with sentry-sdk's CeleryIntegration on, in a fresh
interpreter (the integration patches Celery and kombu for the whole
process): ``python -m tests.integration.sentry_dispatch BROKER QUEUE ORDER IMPL N``.

ORDER is ``sentry-first`` (``sentry_sdk.init`` before turbogroup is
imported) or ``turbogroup-first`` (after ``turbogroup.install()``); IMPL is
``celery`` (Celery's own group) or ``turbogroup``. Prints one JSON object:
the queued messages (raw and their headers), the transaction's trace id and
spans, the dispatch's seconds and reports.
"""

from __future__ import annotations

import base64
import json
import sys
import time

from tests.sentry import init_sentry


def main(broker: str, queue: str, order: str, impl: str, n: int) -> None:
    kept: list = []
    sentry_sdk = init_sentry(kept) if order == "sentry-first" else None
    import redis
    from celery import Celery
    from celery.canvas import group as celery_group

    import turbogroup
    from turbogroup.publish.report import collected_reports

    turbogroup.install()
    if sentry_sdk is None:
        sentry_sdk = init_sentry(kept)
    app = Celery("tg_sentry", broker=broker, set_as_current=False)
    app.conf.task_default_queue = queue

    @app.task(name="tg_sentry.add", shared=False)
    def add(x: int, y: int) -> int:
        return x + y

    group = celery_group if impl == "celery" else turbogroup.group
    client = redis.Redis.from_url(broker)
    client.delete(queue)
    sig = group([add.s(i, i) for i in range(n)], app=app)
    with collected_reports() as reports:
        with sentry_sdk.start_transaction(name="dispatch", op="test") as transaction:
            t0 = time.perf_counter()
            sig.apply_async()
            seconds = time.perf_counter() - t0
            trace_id = transaction.trace_id
    sentry_sdk.flush()
    raw = client.lrange(queue, 0, -1)[::-1]  # LPUSHed: oldest last
    client.delete(queue)
    headers = [json.loads(m)["headers"] for m in raw]
    bodies = [json.loads(base64.b64decode(json.loads(m)["body"])) for m in raw]
    print(json.dumps({
        "trace_id": trace_id,
        "seconds": seconds,
        "raw": [m.decode() for m in raw],
        "headers": headers,
        "spans": [
            {k: v for k, v in span.items() if k not in ("start_timestamp", "timestamp")}
            for span in kept[0]["spans"]
        ],
        "args": [b[0] for b in bodies],
        "reports": [{"by_engine": r.by_engine, "by_celery": r.by_celery} for r in reports],
    }))  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
