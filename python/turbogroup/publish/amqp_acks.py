"""Which of a confirmed dispatch's messages RabbitMQ has acked.

A channel in confirm mode numbers the messages written on it 1, 2, 3, ...
(its delivery tags) and acks or nacks them, one at a time or every tag up
to one (``multiple``), not necessarily in order. ``Acks`` maps the tags of
the current channel back to the messages' places in the dispatch.
"""

from __future__ import annotations

from collections import deque


class Acks:
    """The unsettled messages of one dispatch, by delivery tag."""

    def __init__(self) -> None:
        # delivery tag -> the message's index in the dispatch, unsettled;
        # tags in write order, so a `multiple` ack walks them from the front
        self._pending: dict[int, int] = {}
        self._order: deque[int] = deque()
        self._nacked: dict[int, int] = {}
        self._tag = 0
        self.confirmed = 0

    @property
    def outstanding(self) -> int:
        """Messages written and neither acked nor nacked."""
        return len(self._pending)

    @property
    def nacked(self) -> bool:
        return bool(self._nacked)

    @property
    def settled(self) -> bool:
        """Nothing written is waiting for its ack, and nothing was nacked."""
        return not self._pending and not self._nacked

    def new_channel(self) -> None:
        """Delivery tags restart at 1 on every channel."""
        self._tag = 0

    def written(self, index: int) -> None:
        """The message at ``index`` was written on the channel."""
        self._tag += 1
        self._pending[self._tag] = index
        self._order.append(self._tag)

    def settle(self, delivery_tag: int, multiple: bool, nacked: bool) -> None:
        pending = self._pending
        if multiple:
            order = self._order
            tags = []
            while order and order[0] <= delivery_tag:
                tags.append(order.popleft())
        else:
            tags = [delivery_tag]
        for tag in tags:
            index = pending.pop(tag, None)
            if index is None:
                continue  # settled before by a single ack
            if nacked:
                self._nacked[tag] = index
            else:
                self.confirmed += 1

    def compact(self) -> None:
        """Drop the front tags that single acks settled: only pending tags
        stay in the write order."""
        order, pending = self._order, self._pending
        while order and order[0] not in pending:
            order.popleft()

    def first_unconfirmed(self, written: int) -> int:
        """The index of the first message not acked, of the first
        ``written`` ones (``written`` when all of them are)."""
        unsettled = [*self._pending.values(), *self._nacked.values()]
        return min(unsettled, default=written)

    def take_unsettled(self) -> list[int]:
        """The indexes of the messages written but not acked, in write
        order; forgotten from here on."""
        unsettled = {**self._pending, **self._nacked}
        indexes = [unsettled[tag] for tag in sorted(unsettled)]
        self._pending.clear()
        self._order.clear()
        self._nacked.clear()
        return indexes


__all__ = ["Acks"]
