"""Collection of N results already stored on a result backend (Redis, or
Celery's database backend on PostgreSQL): ``GroupResult.get()`` and
``completed_count()``, Celery's ``GroupResult`` vs turbogroup's. Each round
restores the saved group with ``app.GroupResult.restore(gid)`` (nothing
cached), as a web request following a job up does: plain Celery for one
side, ``turbogroup.install()`` in effect for the other, the user's code the
same. The restore itself is timed as an operation of its own (``restore``),
and is not part of the other operations' times."""

from __future__ import annotations

import gc
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery import Celery, states
from celery.result import GroupResult as CeleryGroupResult

from turbogroup.benchkit.timing import Progress, Timing, run_rounds, time_cap
from turbogroup.benchkit.transports import delete_redis_keys
from turbogroup.install import install, installed, uninstall
from turbogroup.result import GroupResult as TurboGroupResult

IMPLS = ("celery", "turbogroup")
OPERATIONS = ("restore", "get", "completed_count")
STORE_CHUNK = 10_000


class StoredResults:
    """N results stored where ``app``'s backend keeps them."""

    backend_name = ""
    app: Celery

    def store(self, n: int) -> list[str]:
        raise NotImplementedError

    def make_app(self) -> Celery:
        raise NotImplementedError

    def save(self, ids: list[str]) -> str:
        """The id of a group of ``ids`` saved on the backend by Celery, in
        an app of its own, as another process would have saved it: the
        saved ``GroupResult`` registers and subscribes every result on its
        app's backend, and the timed app must start without that."""
        group_id = str(uuid.uuid4())
        saver = self.make_app()
        with closing_app(saver):
            results = [saver.AsyncResult(i) for i in ids]
            CeleryGroupResult(group_id, results, app=saver).save()
        return group_id

    def restore(self, impl: str, group_id: str, app: Celery | None = None) -> Any:
        """The saved group as the user's ``app.GroupResult.restore`` gives
        it, with ``impl``'s class (checked, so a bench of the wrong class
        cannot pass)."""
        res = (app or self.app).GroupResult.restore(group_id)
        if isinstance(res, TurboGroupResult) != (impl == "turbogroup"):
            raise AssertionError(f"{impl}: restore gave {type(res).__mro__}")
        return res

    def close(self) -> None:
        close_app(self.app)


class RedisResults(StoredResults):
    """An app whose Redis result backend keys all start with the run's tag,
    so cleanup is one prefix."""

    backend_name = "redis"

    def __init__(self, redis_url: str, tag: str) -> None:
        self.redis_url, self.prefix = redis_url, f"{tag}-collect:"
        self.app = self.make_app()

    def make_app(self) -> Celery:
        app = Celery("turbogroup-bench-collect", set_as_current=False)
        app.conf.update(
            broker_url="memory://",
            result_backend=self.redis_url,
            result_backend_transport_options={"global_keyprefix": self.prefix},
        )
        return app

    def store(self, n: int) -> list[str]:
        """N successful results (values 0..N-1), written as a worker would."""
        backend = self.app.backend
        ids = [str(uuid.uuid4()) for _ in range(n)]
        for start in range(0, n, STORE_CHUNK):
            pipe = backend.client.pipeline(transaction=False)
            for i in range(start, min(start + STORE_CHUNK, n)):
                meta = backend._get_result_meta(i, states.SUCCESS, None, None)
                meta["task_id"] = ids[i]
                pipe.set(backend.get_key_for_task(ids[i]), backend.encode(meta))
            pipe.execute()
        return ids

    def close(self) -> None:
        super().close()
        delete_redis_keys(self.redis_url, f"{self.prefix}*")


class DatabaseResults(StoredResults):
    """An app on Celery's database backend (SQLAlchemy), its tables named
    for the run and dropped at the end. Reads go as in a web process: a
    new engine per session, as Celery's session manager does outside a
    forked worker."""

    backend_name = "database"

    def __init__(self, database_url: str, tag: str) -> None:
        name = tag.replace("-", "_")  # a plain SQL identifier
        self.tables = {"task": f"{name}_task", "group": f"{name}_group"}
        self.database_url = database_url
        self.app = self.make_app()

    def make_app(self) -> Celery:
        app = Celery("turbogroup-bench-collect-db", set_as_current=False)
        app.conf.update(
            broker_url="memory://",
            result_backend=f"db+{self.database_url}",
            database_table_names=self.tables,
        )
        return app

    def store(self, n: int) -> list[str]:
        """N successful results, each row written by Celery's own
        ``_update_result`` (as the worker writes it), in one session."""
        from celery.backends.database import session_cleanup

        backend = self.app.backend
        ids = [str(uuid.uuid4()) for _ in range(n)]
        session = backend.ResultSession()
        with session_cleanup(session):
            for start in range(0, n, STORE_CHUNK):
                for i in range(start, min(start + STORE_CHUNK, n)):
                    row = backend.task_cls(ids[i])
                    backend._update_result(row, i, states.SUCCESS)
                    session.add(row)
                session.commit()
        return ids

    def close(self) -> None:
        from sqlalchemy import text

        backend = self.app.backend
        engine = backend.session_manager.get_engine(backend.url)
        with engine.begin() as conn:
            for table in self.tables.values():
                conn.execute(text(f'DROP TABLE IF EXISTS "{table}"'))
        engine.dispose()
        super().close()


@contextmanager
def user_setup(impl: str) -> Iterator[None]:
    """Plain Celery, or ``turbogroup.install()`` in effect."""
    if installed():
        raise RuntimeError("the collection bench needs install() not in effect")
    if impl == "celery":
        yield
        return
    install()
    try:
        yield
    finally:
        uninstall()


def close_app(app: Celery) -> None:
    """The app closed with its backend's connections (a socket left to the
    garbage collector would be closed inside a later round)."""
    backend = app.backend
    consumer = getattr(backend, "result_consumer", None)
    if consumer is not None:
        consumer.stop()
    client = getattr(backend, "client", None)
    if client is not None:
        client.connection_pool.disconnect()
    app.close()


@contextmanager
def closing_app(app: Celery) -> Iterator[None]:
    try:
        yield
    finally:
        close_app(app)


def collect_once(
    stored: StoredResults,
    impl: str,
    operation: str,
    saved: tuple[str, int],
    max_seconds: float | None,
) -> float:
    group_id, n = saved
    # Each round in an app of its own, as in a fresh process: Celery's
    # restore registers and subscribes every child on its app's backend,
    # and what a round leaves there changes what the next round on that
    # app costs (measured at 100k: Celery's completed_count 208 µs a
    # result in the first round, 23 in the second on the same app).
    app = stored.make_app()
    with user_setup(impl), time_cap(max_seconds), closing_app(app):
        t0 = time.perf_counter()
        res = stored.restore(impl, group_id, app)
        if operation == "restore":
            elapsed = time.perf_counter() - t0
            value: Any = len(res)
        else:
            t0 = time.perf_counter()
            value = res.get(timeout=max_seconds) if operation == "get" else res.completed_count()
            elapsed = time.perf_counter() - t0
        # The round's results freed now, not by a collection inside the
        # next round's timing, and while their app is open: Celery's
        # unsubscribe as they are dropped, and after the app closed its
        # connections that would open a new one.
        del res
        gc.collect()
    expected = list(range(n)) if operation == "get" else n
    if value != expected:
        raise AssertionError(f"{impl} {operation} returned a wrong value for N={n}")
    return elapsed


def run_collect(
    stored: StoredResults,
    impl: str,
    operation: str,
    saved: tuple[str, int],
    rounds: int,
    max_seconds: float | None,
    progress: Progress,
) -> Timing:
    """``rounds`` timed ``operation`` calls on the group ``saved`` (its id
    and size), restored afresh for each."""
    n = saved[1]
    return run_rounds(
        n,
        rounds,
        max_seconds,
        lambda: (collect_once(stored, impl, operation, saved, max_seconds), None),
        f"collect N={n} {impl} {operation}",
        progress,
    )
