"""The Redis fast path's wire: packed commands sent on a connection of
the channel's own pool, in one round trip, optionally as one transaction
that records that it landed; or several such transactions pipelined, a
window of them written ahead of their replies."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from turbogroup._compat import RedisChannel

# How long a step's landed marker lives: the time in which a retry or a
# resume() of the dispatch knows the step was applied.
LANDED_MARKER_SECONDS = 3600
# Up to this many bytes, a round trip's commands are joined into one write;
# above it the copy costs more than the extra writes.
COALESCE_BYTES = 256 * 1024


def _connection(channel: RedisChannel) -> AbstractContextManager[Any]:
    # The channel's own pool, as its conn_or_acquire() clients use; making
    # such a client only to reach the pool costs ~40 µs per dispatch.
    return pooled_connection(channel.pool)


@contextmanager
def pooled_connection(pool: Any) -> Iterator[Any]:
    """A connection of a redis-py pool, disconnected if anything fails
    while it is held (replies may be left unread), then given back."""
    try:
        connection = pool.get_connection()
    except TypeError:  # redis-py 5 wants a command name (6+ warns on one)
        connection = pool.get_connection("LPUSH")
    try:
        yield connection
    except BaseException:
        connection.disconnect()  # replies may be left unread
        raise
    finally:
        pool.release(connection)


def send_commands(channel: RedisChannel, commands: list[bytes], landed: str | None = None) -> None:
    """Send packed commands in one round trip: all written, then every
    reply read (what a redis-py pipeline does, without re-packing the
    bytes). A reply that is an error raises it. With ``landed``, they run
    as one transaction (MULTI/EXEC) that also sets that key."""
    with _connection(channel) as connection:
        if landed is None:
            _send(connection, commands)
            for _ in commands:
                connection.read_response()
            return
        _write_transaction(connection, commands, landed)
        _read_transaction(connection, len(commands))


#: A transaction to pipeline: its commands and its landed marker's key; None
#: for one already applied (found by its marker), which only takes its turn.
Transaction = tuple[list[bytes], str] | None


def send_transactions(
    channel: RedisChannel,
    transactions: Iterable[Transaction],
    window: int,
    on_applied: Callable[[], None],
) -> None:
    """Send each transaction as ``send_commands(..., landed=...)`` would, in
    order on one connection, with up to ``window`` of them written before
    the first one's replies are read: a slow link costs about one round
    trip per window, not one per transaction. ``on_applied()`` is called
    once per transaction, in order, as soon as its EXEC reply is read (or
    its turn comes, for None); an error raises with the later ones
    unconfirmed (each may have landed: its marker tells)."""
    with _connection(channel) as connection:
        in_flight: deque[int | None] = deque()  # commands per transaction
        for transaction in transactions:
            if len(in_flight) >= window:
                _settle(connection, in_flight.popleft(), on_applied)
            if transaction is None:
                in_flight.append(None)
                continue
            commands, landed = transaction
            _write_transaction(connection, commands, landed)
            in_flight.append(len(commands))
        while in_flight:
            _settle(connection, in_flight.popleft(), on_applied)


def _settle(connection: Any, commands: int | None, on_applied: Callable[[], None]) -> None:
    if commands is not None:
        _read_transaction(connection, commands)
    on_applied()


def _write_transaction(connection: Any, commands: list[bytes], landed: str) -> None:
    head = connection.pack_command("MULTI")
    tail = connection.pack_command("SET", landed, "1", "EX", LANDED_MARKER_SECONDS)
    tail += connection.pack_command("EXEC")
    _send(connection, [*head, *commands, *tail])


def _send(connection: Any, parts: list[bytes]) -> None:
    """Write ``parts`` with as few ``sendall`` calls as copying allows:
    redis-py writes each part with its own, and on a small dispatch each
    write wakes Redis up (a group of one cost four writes, ~3x Celery's
    time on this path)."""
    if len(parts) > 1 and sum(map(len, parts)) <= COALESCE_BYTES:
        parts = [b"".join(parts)]
    connection.send_packed_command(parts)


def _read_transaction(connection: Any, commands: int) -> None:
    for _ in range(commands + 2):  # OK, then QUEUED for each
        connection.read_response()
    for reply in connection.read_response():  # EXEC: one reply per command
        if isinstance(reply, Exception):
            raise reply


def step_landed(channel: RedisChannel, key: str) -> bool:
    """Whether the step whose landed marker is ``key`` was applied."""
    with _connection(channel) as connection:
        connection.send_command("EXISTS", key)
        return bool(connection.read_response())


__all__ = [
    "LANDED_MARKER_SECONDS",
    "Transaction",
    "send_commands",
    "send_transactions",
    "step_landed",
]
