"""turbogroup's exceptions.

Each names what a caller needs to act on: a failed publish lists exactly
the task ids that were not confirmed sent.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from celery.exceptions import CeleryError
from kombu.exceptions import OperationalError


class TurbogroupError(CeleryError):
    """Base of every error turbogroup raises itself."""


class PublishError(TurbogroupError, OperationalError):
    """A batch of messages could not be confirmed sent.

    An ``OperationalError`` too: that is what Celery raises when the broker
    fails during ``apply_async``, so existing handlers keep catching it.

    ``unconfirmed_ids`` are exactly the task ids whose messages may not have
    reached the broker, in dispatch order: the failed batch's, and every
    message after it (never sent). ``confirmed`` counts the messages of this
    dispatch confirmed before the failure. :meth:`resume` sends those
    messages again.
    """

    def __init__(
        self,
        unconfirmed_ids: list[str],
        confirmed: int,
        resume: Callable[[], None] | None = None,
    ) -> None:
        self.unconfirmed_ids = unconfirmed_ids
        self.confirmed = confirmed
        self._resume = resume
        super().__init__(
            f"{len(unconfirmed_ids)} task message(s) not confirmed sent after "
            f"{confirmed} confirmed; unconfirmed ids: {', '.join(unconfirmed_ids[:10])}"
            + (" ..." if len(unconfirmed_ids) > 10 else "")
        )

    def resume(self) -> None:
        """Send the unconfirmed messages again: the very messages the
        dispatch built (same ids, group and index), in order, and confirmed
        as before. A message that did reach the broker before the failure
        (its ack lost with the connection) is then queued twice: resuming
        is the caller's at-least-once choice. Raises ``PublishError`` again,
        resumable in turn, if this send fails too. Once per error."""
        resume, self._resume = self._resume, None
        if resume is None:
            raise RuntimeError("nothing to resume: resumed already, or not a dispatch's error")
        resume()


class MessageTooLargeError(TurbogroupError, ValueError):
    """A message is larger than the broker accepts: refused before any
    message of the group was sent."""


def note_child(
    exc: BaseException, position: int, task_name: str | None, nothing_sent: bool
) -> None:
    """Name the child that made a dispatch fail, on the exception itself.

    The exception keeps the type Celery would have raised (callers catch
    those), with a note (shown under its message in a traceback) and the
    attributes ``group_child`` and ``group_child_task``. ``position`` counts
    the group's tasks in dispatch order, nested groups unrolled.
    """
    if getattr(exc, "group_child", None) is not None:
        return  # the innermost child that failed is the one to name
    if task_name is None:  # set where a child failed to be produced
        task_name = getattr(exc, "_turbogroup_task", None)
    try:
        exc.group_child = position  # type: ignore[attr-defined]
        exc.group_child_task = task_name  # type: ignore[attr-defined]
    except AttributeError:  # an exception type with __slots__
        pass
    where = f"by the group's child #{position}" + (
        f" (task {task_name!r})" if task_name is not None else ""
    )
    _add_note(
        exc,
        f"turbogroup: raised {where}"
        + ("; no message of the group was sent" if nothing_sent else ""),
    )


def _add_note(exc: BaseException, note: str) -> None:
    """``exc.add_note(note)``; on Python 3.10, which has no ``add_note``,
    the same ``__notes__`` list PEP 678 defines (tracebacks there don't
    print it, but code that reads notes finds it)."""
    if sys.version_info >= (3, 11):
        exc.add_note(note)
        return
    notes = getattr(exc, "__notes__", None)
    try:
        if isinstance(notes, list):
            notes.append(note)
        else:
            exc.__notes__ = [note]  # type: ignore[attr-defined]
    except AttributeError:  # an exception type with __slots__
        pass
