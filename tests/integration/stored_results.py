"""Results stored on a real Redis result backend for the collection tests,
and turbogroup's and Celery's group results over them."""

from __future__ import annotations

from celery import uuid
from celery.result import GroupResult as CeleryGroupResult

from turbogroup import GroupResult


def store(app, values, failures=(), revoked=(), pending=()):
    """Stores results for ``len(values)`` tasks; returns their ids."""
    ids = [uuid() for _ in values]
    backend = app.backend
    for i, (task_id, value) in enumerate(zip(ids, values)):
        if i in pending:
            continue
        if i in failures:
            backend.mark_as_failure(task_id, ValueError(f"boom {i}"))
        elif i in revoked:
            backend.mark_as_revoked(task_id, "terminated")
        else:
            backend.mark_as_done(task_id, value)
    return ids


def both(app, ids):
    """(ours, Celery's) results over the same ids, each with fresh children."""
    ours = GroupResult(uuid(), [app.AsyncResult(i) for i in ids], app=app)
    theirs = CeleryGroupResult(uuid(), [app.AsyncResult(i) for i in ids], app=app)
    return ours, theirs
