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
