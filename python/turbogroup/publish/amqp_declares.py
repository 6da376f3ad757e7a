"""Which entities a confirm channel has declared already.

Celery hands every message a ``declare`` list (its queue), and kombu's
``maybe_declare`` skips an entity its connection has declared before. It
still binds a copy of each entity to the channel to find that out: a third
of a message's cost on the confirm channel. So a message whose declare list
(by its entities' identities) was replayed on this channel already, and
whose entities kombu caches, is sent without it: kombu would send nothing
for it.
"""

from __future__ import annotations

from typing import Any

from turbogroup.publish.deferred import Deferred


def declare_key(record: Deferred) -> tuple[int, ...] | None:
    """The entities ``record`` declares, by identity (what a channel
    remembers as declared); None when it declares nothing."""
    declare = record.args[10]
    return tuple(map(id, declare)) if declare else None


class ChannelDeclares:
    """The declare lists replayed on one channel (see the module
    docstring); ``reset()`` when a new channel opens."""

    def __init__(self) -> None:
        self._declared: set[tuple[int, ...]] = set()

    def reset(self) -> None:
        self._declared = set()

    def may_declare(self, record: Deferred) -> bool:
        """Whether writing ``record`` may declare entities (a method that
        waits for its reply), as only its kind's first message does."""
        key = declare_key(record)
        return key is not None and key not in self._declared

    def lean(self, record: Deferred) -> tuple[Deferred, Any]:
        """``record`` without its ``declare`` when this channel declared
        the same entities already; also the key to ``remember`` once this
        one's declare has run, if kombu caches its entities."""
        key = declare_key(record)
        if key is None:
            return record, None
        if key in self._declared:
            return record._replace(args=(*record.args[:10], None, *record.args[11:])), None
        declare = record.args[10]
        cacheable = all(getattr(e, "can_cache_declaration", False) for e in declare)
        return record, key if cacheable else None

    def remember(self, key: Any) -> None:
        if key is not None:
            self._declared.add(key)


__all__ = ["ChannelDeclares", "declare_key"]
