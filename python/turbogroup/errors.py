"""turbogroup's exceptions.

Each names what a caller needs to act on: a failed publish lists exactly
the task ids that were not confirmed sent.
"""

from __future__ import annotations

from celery.exceptions import CeleryError
from kombu.exceptions import OperationalError


class TurbogroupError(CeleryError):
    """Base of every error turbogroup raises itself."""


class PublishError(TurbogroupError, OperationalError):
    """A batch of messages could not be confirmed sent.

    An ``OperationalError`` too: that is what Celery raises when the broker
    fails during ``apply_async``, so existing handlers keep catching it.

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
