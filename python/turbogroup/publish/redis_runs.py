"""A Redis dispatch step's messages: each checked message (``Sealed``) in
dispatch order, and the runs of them one LPUSH pushes (``Run``), an alike
run kept as columns of what differs between its messages.

The helpers read many messages with C-level loops (``map`` over item
getters): a Python loop per message cost a tenth of a dispatch.
"""

from __future__ import annotations

from itertools import islice
from operator import itemgetter
from typing import Any, NamedTuple

from turbogroup import _core
from turbogroup.publish.alike import AlikeChild

Message = dict[str, Any] | AlikeChild


class Sealed(NamedTuple):
    """A checked message of this path, with its place in dispatch order."""

    seq: int
    task_id: str
    key: str
    message: Message
    # its envelope, when kept from the check (see _check)
    encoded: bytes | None = None


class Run(NamedTuple):
    """Messages pushed by one LPUSH, in order: with a ``template``, the
    alike messages as four columns (their ids, group indexes, args and
    kwargs: ~32 bytes a message until sent, where a tuple each took 88),
    a fifth, the rest of each one's chain, for chain members, and a sixth,
    each one's clock fields, for children that read the clock; without,
    whole message dicts (or their envelopes). ``headers``: the headers
    each alike message adds after the template's, when any does
    (``alike_headers``)."""

    key: str
    template: dict[str, Any] | None
    messages: Any
    headers: list[Any] | None = None

    def items(self) -> Any:
        """The encoder's items: ``(task_id, group_index, args, kwargs[,
        chain[, clock]])`` each, for an alike run."""
        return zip(*self.messages)


def alike_columns(
    children: list[AlikeChild], kept_ids: _core.TaskIds | None = None
) -> tuple[Any, ...]:
    """The columns of an alike run; ``kept_ids``, when given, are the
    children's ids already kept."""
    ids, indexes, args, kwargs, chains, clocks = islice(zip(*children), 6)
    if kept_ids is None:
        kept_ids = _core.TaskIds()  # 16 bytes an id until sent, not an 85-byte str
        kept_ids.extend(ids)
    first = indexes[0]
    kept: Any = indexes
    if type(first) is int and indexes == tuple(range(first, first + len(indexes))):
        # the usual run: consecutive children, kept without an int each
        kept = range(first, first + len(indexes))
    # one template: every child has a chain of its own, or none has; and
    # a clock of its own, or none has but its first (the template's own)
    if clocks[-1] is not None:
        return kept_ids, kept, args, kwargs, chains, clocks
    if chains[0] is None:
        return kept_ids, kept, args, kwargs
    return kept_ids, kept, args, kwargs, chains


# pending: (task_id, queue, message, fallback, seq)
TASK_ID, QUEUE, MESSAGE, SEQ = (itemgetter(i) for i in (0, 1, 2, 4))
SEALED_KEY, SEALED_MESSAGE = itemgetter(2), itemgetter(3)
TEMPLATE = itemgetter(6)  # AlikeChild.template
HEADERS = itemgetter(9)  # AlikeChild.headers


def alike_headers(children: list[AlikeChild]) -> list[Any] | None:
    """Each alike child's own headers, when any has some (publish signal
    receivers or a tracer's wrappers added them); None when none has."""
    headers = list(map(HEADERS, children))
    return headers if any(headers) else None


def one_template(messages: list[Message]) -> Any:
    """The template, when every message is an alike child of one."""
    if not messages or set(map(type, messages)) != {AlikeChild}:
        return None
    templates = list(map(TEMPLATE, messages))
    return templates[0] if len(set(map(id, templates))) == 1 else None


def is_own_message(child: AlikeChild) -> bool:
    """Whether ``child`` is its template's own message: the same id and
    group index, and the very arguments and chain (by identity: ``1`` and
    ``1.0`` are equal but written differently). A later child may share
    the first one's id (a frozen signature repeated) and still differ."""
    template = child.template
    return (
        child.headers is None
        and child.task_id == template["task_id"]
        and child.group_index == template["group_index"]
        and child.args is template["args"]
        and child.kwargs is template["kwargs"]
        and child.chain is template["chain"]
    )


def message_priority(message: Message) -> Any:
    return (message.template if isinstance(message, AlikeChild) else message)["priority"]
