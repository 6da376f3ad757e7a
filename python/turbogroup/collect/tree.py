"""The leaves of result sets nested in a group: the backend they share,
and which of them Celery's own state queries read (and so cache)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from itertools import repeat
from operator import attrgetter, is_
from typing import Any

from celery import states
from celery.result import AsyncResult, EagerResult, ResultSet

from turbogroup.collect.settle import NOT_FETCHED

_backend_of = attrgetter("backend")


def shared_backend(results: Sequence[Any]) -> Any:
    """The backend every leaf of ``results`` shares, if they are all
    plain (not eager) results; else None."""
    kinds = set(map(type, results))
    if any(issubclass(kind, ResultSet) for kind in kinds):
        results = list(leaves(results))
        kinds = set(map(type, results))
    if not results:
        return None
    for kind in kinds:
        if not issubclass(kind, AsyncResult) or issubclass(kind, EagerResult):
            return None
    backend = results[0].backend
    if not all(map(is_, map(_backend_of, results), repeat(backend))):
        return None
    return backend


def leaves(results: Iterable[Any]) -> Iterable[Any]:
    for node in results:
        if isinstance(node, ResultSet):
            yield from leaves(node.results)
        else:
            yield node


def status_before_settling(node: Any, decoded: Any) -> Any:
    """A leaf's state from its read, without caching anything: what its
    ``state`` would give (PENDING where nothing is stored)."""
    if decoded is NOT_FETCHED:
        return node._cache["status"]
    if decoded is None:
        return states.PENDING
    return decoded["status"] if isinstance(decoded, dict) else None


def leaves_read(
    results: Sequence[Any],
    statuses: list[Any],
    until: Callable[[Any], bool] | None,
    nested_until: Callable[[Any], bool] | None,
) -> list[int]:
    """The indexes (in ``leaves`` order) of the leaves Celery's query
    reads: at the top level up to the first child whose state satisfies
    ``until``, within each nested set up to its first leaf satisfying
    ``nested_until`` (a nested set that stops there stops the top level
    when ``until`` is given)."""
    read: list[int] = []
    position = 0

    def walk(
        nodes: Sequence[Any], stop: Callable[[Any], bool] | None, top: bool, reading: bool
    ) -> bool:
        """Every leaf of ``nodes`` passed (``position`` counts them), those
        before the stop read while ``reading``; whether it stopped."""
        nonlocal position
        stopped = False
        for node in nodes:
            if isinstance(node, ResultSet):
                inner = walk(node.results, nested_until, False, reading and not stopped)
                stopped = stopped or (inner and (not top or until is not None))
                continue
            if reading and not stopped:
                read.append(position)
                stopped = stop is not None and stop(statuses[position])
            position += 1
        return stopped

    walk(results, until, True, True)
    return read


__all__ = ["leaves", "leaves_read", "shared_backend", "status_before_settling"]
