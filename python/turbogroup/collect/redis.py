"""Batched result collection on Celery's Redis result backend.

Celery collects a group on Redis by SUBSCRIBE-ing to one channel per task
and waiting for pub/sub messages (``join_native``), or by one GET per task
(``join``, ``completed_count``). At 100k tasks the subscriptions overflow
the client output buffer and Redis drops the connection.

Here every read is one pipelined round trip of MGETs over all the tasks
still pending, 1000 keys per MGET (each reply decoded as it arrives, while
Redis serves the next), inside the shared polling loop of
``turbogroup.collect.collector``. Polling needs no per-task state on the
server or in the client, survives any group size, and costs one round trip
per poll. (Keyspace notifications would push instead, but need server
configuration a user may not control; a single shared channel would need
the worker to publish to it, which Celery's worker does not do.)

Every meta goes through the backend's own decoding (JSON parsed by jiter
when it is kombu's) and ``meta_from_decoded``, then is cached on its result
as ``_maybe_set_cache`` caches it (``turbogroup.collect.settle``), so
results are cached, exceptions rebuilt and ready barriers fired exactly as
when Celery fetches them one by one, and in the same order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from operator import attrgetter
from typing import Any

from celery import states
from kombu.serialization import registry
from kombu.utils.encoding import bytes_to_str, ensure_bytes
from kombu.utils.json import loads as kombu_json_loads

from turbogroup._compat import RedisBackend
from turbogroup._core import mget_commands
from turbogroup.collect.collector import Collector
from turbogroup.collect.decode import decode_json_batch
from turbogroup.collect.subscriptions import quick_fulfilment
from turbogroup.publish.redis_wire import pooled_connection

MGET_CHUNK = 1000

_id_of = attrgetter("id")
# a stand-in's (turbogroup.lazy.LazyNode) meta, and payload kept undecoded
_meta_of = attrgetter("_meta")
_raw_of = attrgetter("_raw")

#: LazyResults.settle_states: (stand-ins, their payloads, the decoder) ->
#: their states, or None where they must be read as results.
SettleStates = Callable[[list[Any], list[Any], Callable[[list[Any]], list[Any]]], list[Any] | None]

#: What Celery runs to read one result (``AsyncResult._get_task_meta`` ->
#: ``backend.get_task_meta`` -> ...): the collector does the same work in
#: bulk, so a backend class that overrides any of it keeps Celery's path.
_READ_PATH = (
    "get_task_meta",
    "_get_task_meta_for",
    "get",
    "mget",
    "get_key_for_task",
    "_get_key_for",
    "decode_result",
    "decode",
    "meta_from_decoded",
)


def _decodes_plain_kombu_json(backend: RedisBackend) -> bool:
    """Whether the backend's payloads are exactly kombu's JSON: then jiter
    may parse them (a user-registered JSON decoder keeps its own)."""
    accept = backend.accept
    return (
        backend.content_type == "application/json"
        and backend.content_encoding == "utf-8"
        and (
            "application/json" in accept
            if accept is not None
            else "application/json" not in registry._disabled_content_types
        )
        and registry._decoders.get("application/json") is kombu_json_loads
    )


def reads_like_celery(backend_cls: type) -> bool:
    return all(getattr(backend_cls, name) is getattr(RedisBackend, name) for name in _READ_PATH)


class RedisCollector(Collector):
    """Reads many task metas from one Redis result backend at once."""

    def __init__(
        self,
        backend: RedisBackend,
        nodes: Sequence[Any] = (),
        settle_all: Callable[[list[Any], list[Any]], list[Any]] | None = None,
        settle_states: SettleStates | None = None,
    ) -> None:
        super().__init__(backend, nodes, settle_all)
        self._bulk_json = _decodes_plain_kombu_json(backend)
        # Stand-ins' states from their payloads (LazyResults.settle_states):
        # where a kept payload decodes as this collector decodes it, into
        # Celery's own meta_from_decoded (as settle_all), and Celery would
        # not keep it in the backend's result cache.
        self._settle_states = (
            settle_states
            if self._bulk_json and self._settle_all is not None and self._backend_cache is None
            else None
        )
        # Celery's _get_key_for(task_keyprefix, id): the prefix (with any
        # global_keyprefix) then the id, UTF-8 encoded.
        self._key_prefix = bytes_to_str(ensure_bytes(backend.task_keyprefix))

    def _read(self, nodes: Sequence[Any]) -> list[Any]:
        return self._read_payloads(nodes, self._decode)

    def _read_payloads(
        self, nodes: Sequence[Any], decode: Callable[[list[Any]], list[Any]] = list
    ) -> list[Any]:
        """Each node's stored payload (None where nothing is stored), through
        ``decode`` (per MGET reply) as it is read."""
        ids = list(map(_id_of, nodes))
        with pooled_connection(self.backend.client.connection_pool) as connection:
            packed, count = self._mget_commands(ids, connection)
            # As a redis-py pipeline retries its round trip: the whole read
            # again, on the connection's own retry policy.
            return connection.retry.call_with_retry(
                lambda: self._read_on(connection, packed, count, decode),
                lambda _error: connection.disconnect(),
            )

    def states(
        self,
        results: Sequence[Any],
        until: Callable[[Any], bool] | None = None,
        nested_until: Callable[[Any], bool] | None = None,
    ) -> list[Any]:
        if until is None and self._settle_states is not None and type(results) is list:
            found = self._stand_in_states(results)
            if found is not None:
                return found
        return super().states(results, until, nested_until)

    def _stand_in_states(self, nodes: list[Any]) -> list[Any] | None:
        """``states()`` of a group's stand-ins with the plain successes'
        payloads kept undecoded (``LazyResults.settle_states``): the nodes
        with a meta or a kept payload are not read, as Celery does not read
        a cached result."""
        assert self._settle_states is not None
        metas = list(map(_meta_of, nodes))
        raws = list(map(_raw_of, nodes))
        unknown = [i for i, (m, r) in enumerate(zip(metas, raws)) if m is None and r is None]
        if len(unknown) == len(nodes):
            return self._settle_states(nodes, self._read_payloads(nodes), self._decode)
        # a kept payload is a plain success
        out = [states.SUCCESS if m is None else m["status"] for m in metas]
        if unknown:
            read = [nodes[i] for i in unknown]
            found = self._settle_states(read, self._read_payloads(read), self._decode)
            if found is None:
                return None
            for i, status in zip(unknown, found):
                out[i] = status
        return out

    def _mget_commands(self, ids: list[Any], connection: Any) -> tuple[list[bytes], int]:
        """The MGETs of every id's key, 1000 keys each, packed, and how many
        MGETs that is: packed in Rust for string ids (the prefix's and the
        id's UTF-8 bytes, as Celery's ``_get_key_for`` joins them);
        otherwise each key is the backend's own, packed by ``connection``."""
        try:
            commands = mget_commands(self._key_prefix, ids, MGET_CHUNK)
            return commands, len(commands)
        except TypeError:
            keys = list(map(self.backend.get_key_for_task, ids))
            mgets = [
                ("MGET", *keys[start : start + MGET_CHUNK])
                for start in range(0, len(keys), MGET_CHUNK)
            ]
            return connection.pack_commands(mgets), len(mgets)

    def _read_on(
        self,
        connection: Any,
        packed: list[bytes],
        count: int,
        decode: Callable[[list[Any]], list[Any]],
    ) -> list[Any]:
        """Every MGET written at once, then each of the ``count`` replies
        decoded as it is read, so Redis serves the next ones while this
        decodes."""
        connection.send_packed_command(packed)
        values: list[Any] = []
        for _ in range(count):
            values.extend(decode(connection.read_response()))
        return values

    def _decode(self, payloads: list[bytes | None]) -> list[Any]:
        """``backend.decode`` of every payload (``meta_from_decoded`` is
        left to the settler); JSON parsed by jiter where it gives what
        kombu's ``json.loads`` gives, kombu otherwise (``collect/decode.py``)."""
        backend = self.backend
        if not self._bulk_json:
            decode = backend.decode
            return [None if p is None else decode(p) for p in payloads]
        values, needs_kombu = decode_json_batch(payloads)
        for i in needs_kombu:
            values[i] = backend.decode(payloads[i])
        return values

    def _fulfilment(self) -> AbstractContextManager[Any]:
        return quick_fulfilment(self.backend)
