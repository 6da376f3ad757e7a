"""turbogroup's exceptions.

Later layers (bulk dispatch, collection) raise these; each names the child
by its index and task name so a failing member of a 100k group can be found.
"""

from __future__ import annotations

from celery.exceptions import CeleryError


class TurbogroupError(CeleryError):
    """Base of every error turbogroup raises itself."""


class InvalidGroupMemberError(TurbogroupError, TypeError):
    """A child of a group is not a signature, or cannot be sent."""

    def __init__(self, index: int, task_name: str | None, reason: str) -> None:
        self.index = index
        self.task_name = task_name
        self.reason = reason
        name = f" ({task_name})" if task_name else ""
        super().__init__(f"group member {index}{name}: {reason}")


class PublishError(TurbogroupError):
    """A batch of messages could not be confirmed sent.

    ``unconfirmed_ids`` are exactly the task ids whose messages may not have
    reached the broker (the failed batch); ``confirmed`` counts the messages
    of this dispatch that were confirmed before the failure. Tasks after the
    failed batch were not published at all.
    """

    def __init__(self, unconfirmed_ids: list[str], confirmed: int) -> None:
        self.unconfirmed_ids = unconfirmed_ids
        self.confirmed = confirmed
        super().__init__(
            f"{len(unconfirmed_ids)} task message(s) not confirmed sent after "
            f"{confirmed} confirmed; unconfirmed ids: {', '.join(unconfirmed_ids[:10])}"
            + (" ..." if len(unconfirmed_ids) > 10 else "")
        )
