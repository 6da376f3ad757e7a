"""A tracer's Celery integration alone: what it does per message when
nothing is published, timed as ``tracing.py`` times a dispatch (N messages
inside the same span or transaction, best of the rounds). No dispatch that
runs the tracer per message, as Celery does, can take less.

- ``opentelemetry``: Celery's ``before_task_publish`` and
  ``after_task_publish`` sent (Celery's ``Signal.send``) to OpenTelemetry's
  receivers with the arguments ``send_task_message`` gives them.
- ``sentry``: its wrappers of ``Task.apply_async``, ``Celery.send_task``
  and ``Producer.publish``, each called with the arguments Celery's code
  gives it, around a function that only calls the next one.

The arguments (ids, headers dicts) are made before the clock starts: they
are Celery's cost, not the tracer's.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from celery import Celery, signals

from turbogroup.celery_guards import publishing_wrappers

Run = Callable[[int], None]


def time_alone(tracer: str, traced: Callable[[], Any], n: int, rounds: int) -> list[float]:
    """Seconds per round of ``n`` messages' worth of ``tracer``'s own work."""
    app = Celery("tg_tracer_alone", broker="memory://", set_as_current=False)
    app.conf.task_default_queue = "tg-tracer-alone"
    add = app.task(name="tg_tracing_bench.add", shared=False)(_add)
    seconds = []
    try:
        for _ in range(rounds):
            run = {"opentelemetry": _signals, "sentry": _wrappers}[tracer](app, add, n)
            with traced():
                t0 = time.perf_counter()
                for i in range(n):
                    run(i)
                seconds.append(time.perf_counter() - t0)
    finally:
        app.close()
    return seconds


def _add(x: int, y: int) -> int:
    return x + y


def _headers(add: Any, n: int) -> list[dict[str, Any]]:
    """Each message's headers as ``as_task_v2`` makes them."""
    group_id = str(uuid.uuid4())
    out = []
    for i in range(n):
        task_id = str(uuid.uuid4())
        out.append({
            "lang": "py", "task": add.name, "id": task_id, "shadow": None, "eta": None,
            "expires": None, "group": group_id, "group_index": i, "retries": 0,
            "timelimit": [None, None], "root_id": task_id, "parent_id": None,
            "argsrepr": f"({i}, {i})", "kwargsrepr": "{}", "origin": "gen1@bench",
            "ignore_result": False, "replaced_task_nesting": 0, "stamped_headers": None,
            "stamps": {},
        })  # fmt: skip
    return out


def _signals(app: Any, add: Any, n: int) -> Run:
    queue = app.amqp.queues[app.conf.task_default_queue]
    all_headers = _headers(add, n)
    embed = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
    policy = dict(app.conf.task_publish_retry_policy)

    def run(i: int) -> None:
        headers = all_headers[i]
        body: tuple[Any, ...] = ((i, i), {}, embed)
        properties = {"correlation_id": headers["id"], "reply_to": None}
        signals.before_task_publish.send(
            sender=add.name, body=body, exchange="", routing_key=queue.name,
            headers=headers, properties=properties, declare=[queue], retry_policy=policy,
        )  # fmt: skip
        signals.after_task_publish.send(
            sender=add.name, body=body, exchange="", routing_key=queue.name, headers=headers
        )

    return run


def _wrappers(app: Any, add: Any, n: int) -> Run:
    wrappers = publishing_wrappers(app)
    assert wrappers is not None and all(wrappers), "sentry-sdk's three wrappers"
    all_headers = _headers(add, n)
    producer = app.amqp.Producer(app.connection_for_write())
    embed = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
    policy = dict(app.conf.task_publish_retry_policy)

    def publish(*args: Any, **kwargs: Any) -> None:
        del args, kwargs

    def send_task(app: Any, name: str, args: Any, kwargs: Any, **options: Any) -> None:
        headers = dict(all_headers[options["group_index"]], **(options.get("headers") or {}))
        publish_wrapper(
            producer, (args, kwargs, embed), exchange="", routing_key="tg-tracer-alone",
            serializer="json", compression=None, retry=True, retry_policy=policy,
            delivery_mode=2, declare=[], headers=headers, timeout=None,
            confirm_timeout=None, correlation_id=options["task_id"], reply_to=None,
        )  # fmt: skip

    def apply_async(task: Any, args: Any, kwargs: Any, **options: Any) -> None:
        send_task_wrapper(app, task.name, args, kwargs, **options)

    apply_async_wrapper = wrappers.apply_async.around(apply_async)  # type: ignore[union-attr]
    send_task_wrapper = wrappers.send_task.around(send_task)  # type: ignore[union-attr]
    publish_wrapper = wrappers.publish.around(publish)  # type: ignore[union-attr]

    def run(i: int) -> None:
        headers = all_headers[i]
        apply_async_wrapper(
            add, (i, i), {}, task_id=headers["id"], producer=producer, add_to_parent=False,
            group_id=headers["group"], group_index=i, root_id=headers["root_id"],
        )  # fmt: skip

    return run


__all__ = ["time_alone"]
