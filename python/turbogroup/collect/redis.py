"""Batched result collection on Celery's Redis result backend.

Celery collects a group on Redis by SUBSCRIBE-ing to one channel per task
and waiting for pub/sub messages (``join_native``), or by one GET per task
(``join``, ``completed_count``). At 100k tasks the subscriptions overflow
the client output buffer and Redis drops the connection.

Here every read is one pipelined round trip of MGETs over all the tasks
still pending, 1000 keys per MGET. Waiting is polling with backoff rather
than pub/sub: it needs no per-task state on the server or in the client,
survives any group size, and costs one round trip per poll. The poll
interval starts short (results often arrive fast) and doubles up to the
caller's ``interval``, and never drops below the time the last poll took,
so a huge pending set cannot keep Redis busy more than half the time.
(Keyspace notifications would push instead, but need server configuration
a user may not control; a single shared channel would need the worker to
publish to it, which Celery's worker does not do.)

Every meta goes through the backend's own ``decode_result`` and each
result's ``_maybe_set_cache``, so results are cached, exceptions rebuilt and
ready barriers fired exactly as when Celery fetches them one by one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from celery import states
from celery.exceptions import TimeoutError as CeleryTimeoutError
from celery.result import AsyncResult, EagerResult, ResultSet
from kombu.serialization import registry
from kombu.utils.encoding import ensure_bytes
from kombu.utils.json import loads as kombu_json_loads

from turbogroup import _core
from turbogroup._compat import RedisBackend
from turbogroup.collect.subscriptions import quick_fulfilment

MGET_CHUNK = 1000
FIRST_POLL_INTERVAL = 0.005

PENDING_META = {"status": states.PENDING, "result": None}


def _decodes_plain_kombu_json(backend: RedisBackend) -> bool:
    """Whether the backend's payloads are exactly kombu's JSON: then Rust
    may parse them (a user-registered JSON decoder keeps its own)."""
    accept = backend.accept
    return (
        backend.content_type == "application/json"
        and backend.content_encoding == "utf-8"
        and (accept is None or "application/json" in accept)
        and registry._decoders.get("application/json") is kombu_json_loads
    )


def backend_for(results: Sequence[Any]) -> RedisBackend | None:
    """The Redis backend every leaf of ``results`` shares, else None (then
    Celery's own per-result code runs unchanged)."""
    backend = None
    for leaf in leaves(results):
        if isinstance(leaf, EagerResult) or not isinstance(leaf, AsyncResult):
            return None
        leaf_backend = leaf.backend
        if not isinstance(leaf_backend, RedisBackend):
            return None
        if backend is None:
            backend = leaf_backend
        elif leaf_backend is not backend:
            return None
    return backend


def leaves(results: Iterable[Any]) -> Iterable[Any]:
    for node in results:
        if isinstance(node, ResultSet):
            yield from leaves(node.results)
        else:
            yield node


class RedisCollector:
    """Reads many task metas from one Redis result backend at once."""

    def __init__(self, backend: RedisBackend) -> None:
        self.backend = backend
        self._rust_json = _decodes_plain_kombu_json(backend)
        # Celery's _get_key_for(task_keyprefix, id): the prefix (with any
        # global_keyprefix) then the id, as bytes.
        self._key_prefix = ensure_bytes(backend.task_keyprefix)

    def fetch(self, nodes: Sequence[AsyncResult]) -> list[dict[str, Any]]:
        """Current metas of ``nodes`` (PENDING when nothing is stored), in
        one round trip. Ready metas are cached on their results."""
        metas: list[dict[str, Any] | None] = [node._cache for node in nodes]
        missing = [i for i, meta in enumerate(metas) if meta is None]
        if missing:
            decoded = self._decode(self._mget([nodes[i].id for i in missing]))
            ready = states.READY_STATES
            with quick_fulfilment(self.backend):
                for i, meta in zip(missing, decoded):
                    if meta is None:
                        continue
                    if meta["status"] in ready:
                        node = nodes[i]
                        node._maybe_set_cache(meta)
                        meta = node._cache
                    metas[i] = meta
        return [meta if meta is not None else PENDING_META for meta in metas]

    def _mget(self, task_ids: Sequence[str]) -> list[bytes | None]:
        prefix = self._key_prefix
        keys = [prefix + task_id.encode() for task_id in task_ids]
        pipe = self.backend.client.pipeline(transaction=False)
        for start in range(0, len(keys), MGET_CHUNK):
            pipe.mget(keys[start : start + MGET_CHUNK])
        out: list[bytes | None] = []
        for part in pipe.execute():
            out.extend(part)
        return out

    def _decode(self, payloads: list[bytes | None]) -> list[dict[str, Any] | None]:
        """``backend.decode_result`` of every payload; JSON parsed in Rust
        where it gives what kombu's ``json.loads`` gives, kombu otherwise."""
        backend = self.backend
        if not self._rust_json:
            return [None if p is None else backend.decode_result(p) for p in payloads]
        values, needs_kombu = _core.decode_json_batch(payloads)
        for i in needs_kombu:
            values[i] = backend.decode(payloads[i])
        from_decoded = backend.meta_from_decoded
        return [None if v is None else from_decoded(v) for v in values]

    def states(self, results: Sequence[Any]) -> list[Any]:
        """For each node of ``results``: its state, or for a nested result
        set the list of its children's (recursively), from one fetch."""
        flat = list(leaves(results))
        by_leaf = iter(meta["status"] for meta in self.fetch(flat))

        def shape(nodes: Sequence[Any]) -> list[Any]:
            return [
                shape(node.results) if isinstance(node, ResultSet) else next(by_leaf)
                for node in nodes
            ]

        return shape(results)

    def collect(
        self,
        results: Sequence[Any],
        *,
        timeout: float | None,
        propagate: bool,
        interval: float,
        callback: Callable[[str, Any], Any] | None,
        on_message: Callable[[dict[str, Any]], Any] | None,
        on_interval: Callable[[], Any] | None,
        on_progress: Callable[[int, int], Any] | None,
        in_order: bool,
        nested: Callable[[Any], Any],
    ) -> list[Any] | None:
        """Wait for every result and return the values in group order.

        ``in_order`` gives ``join``'s semantics (values handed out strictly
        in order; the first failure *in order* raises once everything before
        it has succeeded); otherwise ``join_native``'s (handed out as they
        arrive, in group order within one poll). ``nested(node)`` returns the
        value of a nested result set, as Celery's join does for it.
        """
        interval = 0.5 if interval is None else interval
        acc: list[Any] = [None] * len(results)
        total = len(results)
        pending = [i for i, node in enumerate(results) if not isinstance(node, ResultSet)]
        done = 0
        cursor = 0  # in_order: next index to hand out
        ready_values: dict[int, tuple[dict[str, Any], Any]] = {}

        def hand_out(i: int, meta: dict[str, Any] | None, value: Any) -> None:
            nonlocal done
            if meta is not None:
                if on_message is not None:
                    on_message(meta)
                if propagate and meta["status"] in states.PROPAGATE_STATES:
                    raise value
            if callback is not None:
                callback(results[i].id, value)
            else:
                acc[i] = value
            done += 1

        if not in_order:
            # Celery's native join yields nested sets first, from memory.
            for i, node in enumerate(results):
                if isinstance(node, ResultSet):
                    hand_out(i, None, nested(node))

        start = time.monotonic()
        nap = min(FIRST_POLL_INTERVAL, interval)
        ready_states = states.READY_STATES
        while True:
            poll_started = time.monotonic()
            arrived: list[int] = []
            if pending:
                metas = self.fetch([results[i] for i in pending])
                still = []
                for i, meta in zip(pending, metas):
                    if meta["status"] in ready_states:
                        arrived.append(i)
                        ready_values[i] = (meta, meta["result"])
                    else:
                        still.append(i)
                pending = still
            if in_order:
                while cursor < total:
                    node = results[cursor]
                    if isinstance(node, ResultSet):
                        hand_out(cursor, None, nested(node))
                    elif cursor in ready_values:
                        hand_out(cursor, *ready_values.pop(cursor))
                    else:
                        break
                    cursor += 1
            else:
                # pending is kept in group order, so arrivals are too
                for i in arrived:
                    hand_out(i, *ready_values.pop(i))
            if on_progress is not None:
                on_progress(done, total)
            if done >= total:
                break
            elapsed = time.monotonic() - start
            if timeout is not None and elapsed >= timeout:
                raise CeleryTimeoutError("The operation timed out.")
            if on_interval is not None:
                on_interval()
            took = time.monotonic() - poll_started
            sleep_for = max(nap, took)
            if timeout is not None:
                sleep_for = min(sleep_for, max(timeout - elapsed, 0.0))
            time.sleep(sleep_for)
            nap = min(nap * 2, interval)
        return None if callback is not None else acc
