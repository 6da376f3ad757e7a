"""Batched result collection on Celery's database (SQLAlchemy) backend.

Celery reads a stored result with one session and one ``SELECT ... WHERE
task_id = ?`` per task (``DatabaseBackend._get_task_meta_for``), ~14 ms on
PostgreSQL here, and polls each pending result again every ``interval``.
Here a poll is one session and one ``SELECT ... WHERE task_id IN (...)``
per ``IN_CHUNK`` ids over every result still pending. Each row becomes the
meta Celery's ``_get_task_meta_for`` builds from it (the row's own
``to_dict``, the stored result, args, kwargs, children and stamps decoded
the same way); a task with no row gets Celery's PENDING meta. The read runs
under the backend's retry policy (``_ensure_retryable``), as Celery's does.

This module imports SQLAlchemy (through Celery's backend), so it is only
imported once an app's backend is a database backend
(``turbogroup.collect.choose``).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from operator import attrgetter
from typing import Any

from celery import states
from celery.backends.database import DatabaseBackend, session_cleanup
from celery.backends.database.models import Task, TaskExtended
from celery.exceptions import BackendGetMetaError
from sqlalchemy.exc import DatabaseError

from turbogroup.collect.collector import Collector

#: Ids per ``IN (...)``: far below every dialect's bound-parameter limit.
IN_CHUNK = 1000

_id_of = attrgetter("id")

#: What Celery runs to read one result (``AsyncResult._get_task_meta`` ->
#: ``backend.get_task_meta`` -> ...): the collector does the same work in
#: bulk, so a backend class that overrides any of it keeps Celery's path.
_READ_PATH = (
    "get_task_meta",
    "_get_task_meta_for",
    "_query_task",
    "_decode_stored_result",
    "decode",
    "meta_from_decoded",
    "ResultSession",
)
_CELERYS_ROWS = {Task.to_dict, TaskExtended.to_dict}


def reads_like_celery(backend: Any) -> bool:
    cls = type(backend)
    return (
        isinstance(backend, DatabaseBackend)
        and all(getattr(cls, name) is getattr(DatabaseBackend, name) for name in _READ_PATH)
        and backend.task_cls.to_dict in _CELERYS_ROWS
    )


class DatabaseCollector(Collector):
    """Reads many task metas from one database result backend at once."""

    def __init__(self, backend: DatabaseBackend, nodes: Sequence[Any] = ()) -> None:
        super().__init__(backend, nodes)
        # What _get_task_meta_for gives for a task with no row, but its id:
        # the to_dict of a new row (no defaults applied before an INSERT).
        self._no_row = self._meta(backend.task_cls(None).to_dict() | {"status": states.PENDING})

    def _read(self, nodes: Sequence[Any]) -> list[Any]:
        task_ids = list(map(_id_of, nodes))
        found = self.backend._ensure_retryable(
            self._rows,
            task_ids,
            fallback_exc=partial(BackendGetMetaError, task_id=task_ids[0]),
            fallback_msg="failed to get meta",
        )
        no_row, meta = self._no_row, self._meta
        # A meta of its own per node, as each of Celery's reads makes one.
        return [
            meta(dict(row)) if (row := found.get(task_id)) else {**no_row, "task_id": task_id}
            for task_id in task_ids
        ]

    def _rows(self, task_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The ``to_dict`` of each stored id's row, from one session."""
        session = self.backend.ResultSession()
        with session_cleanup(session):
            return {row.task_id: row.to_dict() for row in self._query(session, task_ids)}

    def _query(self, session: Any, task_ids: list[str]) -> list[Any]:
        model = self.backend.task_cls
        try:
            rows = []
            for start in range(0, len(task_ids), IN_CHUNK):
                chunk = task_ids[start : start + IN_CHUNK]
                rows.extend(session.query(model).filter(model.task_id.in_(chunk)))
            return rows
        except DatabaseError:
            # A table older than the model (no children or stamps column):
            # Celery's own per-id query knows which columns to leave out.
            session.rollback()
            found = (self.backend._query_task(session, task_id) for task_id in task_ids)
            return [row for row in found if row]

    def _meta(self, data: dict[str, Any]) -> dict[str, Any]:
        """``_get_task_meta_for``'s decoding of a row's ``to_dict``
        (``meta_from_decoded`` is left to the settler)."""
        backend = self.backend
        decode = backend.decode
        data["result"] = backend._decode_stored_result(data["result"])
        if data.get("args", None) is not None:
            data["args"] = decode(data["args"])
        if data.get("kwargs", None) is not None:
            data["kwargs"] = decode(data["kwargs"])
        if data.get("children", None) is not None:
            data["children"] = decode(data["children"])
        raw_stamps = data.pop("stamps", None)
        if raw_stamps is not None:
            try:
                stamps_info = decode(raw_stamps)
                if isinstance(stamps_info, dict):
                    if "stamped_headers" in stamps_info:
                        data["stamped_headers"] = stamps_info["stamped_headers"]
                    if "stamps" in stamps_info and isinstance(stamps_info["stamps"], dict):
                        data.update(stamps_info["stamps"])
            except Exception:  # Celery ignores stamps it cannot decode
                pass
        return data
