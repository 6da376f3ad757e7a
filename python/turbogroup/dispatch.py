"""What one group dispatch shares among its children: where the messages
go (:class:`Sending`) and what every child is published with
(:class:`GroupCall`). ``group.apply_async`` makes them once; the paths
that publish the children (``group._apply_tasks``, ``plain.PlainDispatch``)
read them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class GroupCall:
    """The group's ids, and the partial arguments and options its
    ``apply_async`` was called with, as each child's publish gets them."""

    group_id: str
    root_id: str | None
    args: Any
    kwargs: Any
    options: dict[str, Any]


@dataclass(frozen=True)
class Sending:
    """Where a dispatch's messages go: the producer children publish into,
    the bulk publisher behind it (None: Celery's per-message publish), the
    transport's fast path (None: none applies), and whether results need
    no subscription while being dispatched."""

    producer: Any
    batch: Any
    fast: Any
    lazy_results: bool
