"""What the bulk publisher knows of RabbitMQ's wire: its message size
limit, whether a connection is py-amqp's, a channel in confirm mode, and
frames of many messages written together.

py-amqp writes each ``basic_publish`` (method, header and body frames) to
the socket with its own ``sendall``: one system call per message, the
largest single cost of a confirmed bulk dispatch once the messages are
built. While :func:`coalesced_writes` is held, the frames py-amqp writes
are gathered instead and go out a few hundred KiB at a time, through the
transport's own ``write`` (so a failure marks the connection as py-amqp
does). The bytes and their order are py-amqp's; only the number of system
calls changes.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from turbogroup.celery_guards import keep_confirms_while_closing

# RabbitMQ's default max_message_size from 3.8 to 3.13; 4.x lowers it to
# 16 MiB. A bigger message closes the channel mid-dispatch, so it is refused
# before anything is sent. The default follows the version the server
# announces; ``turbogroup_max_message_size`` in the app's config sets the
# broker's own value.
DEFAULT_MAX_MESSAGE_SIZE = 128 * 1024 * 1024
RABBITMQ_4_MAX_MESSAGE_SIZE = 16 * 1024 * 1024


def confirm_channel(
    connection: Any, on_ack: Callable[[int, bool], Any], on_nack: Callable[[int, bool], Any]
) -> Any:
    """A new channel of ``connection`` in confirm mode, its acks and nacks
    going to ``on_ack``/``on_nack(delivery_tag, multiple)``."""
    channel = connection.channel()
    # With the transport option confirm_publish=True py-amqp makes every
    # basic_publish wait for its own ack; we pipeline, so publish plain.
    channel.basic_publish = channel._basic_publish
    channel.events["basic_ack"].add(on_ack)
    channel.events["basic_nack"].add(on_nack)
    keep_confirms_while_closing(channel)
    channel.confirm_select()
    return channel


def default_max_message_size(server_properties: dict[Any, Any]) -> int:
    """RabbitMQ's default limit for the server version it announced."""
    version = server_properties.get("version") or server_properties.get(b"version") or b""
    if isinstance(version, bytes):
        version = version.decode("ascii", "replace")
    major = str(version).split(".", 1)[0]
    if major.isdigit() and int(major) >= 4:
        return RABBITMQ_4_MAX_MESSAGE_SIZE
    return DEFAULT_MAX_MESSAGE_SIZE


def uses_pyamqp(connection: Any) -> bool:
    """True for a kombu connection on the py-amqp transport (``amqp://``,
    ``pyamqp://``, ``amqps://``), the one whose channels we drive here.

    A connection on that transport has imported its module, so it is looked
    up, not imported: an import per dispatch took the import lock on every
    call, and the first ones from several threads at once queued on it."""
    module = sys.modules.get("kombu.transport.pyamqp")
    return (
        connection is not None
        and module is not None
        and isinstance(connection.transport, module.Transport)
    )


#: Gathered frames are written once they reach this size.
COALESCE_BYTES = 256 * 1024


def _plain_tcp(transport: Any) -> bool:
    """A py-amqp TCP transport writing straight to its socket (the TLS one
    writes through its own loop, and anything else is not ours to touch)."""
    try:
        from amqp.transport import TCPTransport
    except ImportError:
        return False
    sock = getattr(transport, "sock", None)
    return (
        type(transport) is TCPTransport
        and sock is not None
        and transport.__dict__.get("_write") == sock.sendall
    )


class Gathering:
    """Frames py-amqp writes on one transport, held until :meth:`flush`."""

    def __init__(self, transport: Any, limit: int) -> None:
        self._transport = transport
        self._send = transport._write
        self._limit = limit
        self._frames = bytearray()
        self.writes = self.bytes_written = 0  # gathered writes to the socket

    def _gather(self, frames: Any) -> None:
        # py-amqp hands a view of the frame buffer it reuses: copied now.
        self._frames.extend(frames)
        if len(self._frames) >= self._limit:
            self._send(self._take())

    def _take(self) -> bytes:
        data = bytes(self._frames)
        self._frames.clear()
        self.writes += 1
        self.bytes_written += len(data)
        return data

    def flush(self) -> None:
        """Write what is gathered, through py-amqp's own ``write``."""
        if self._frames:
            data = self._take()
            with self.paused():
                self._transport.write(data)

    def stop(self) -> None:
        """Drop what is gathered (never sent) and write straight out from
        now on: before the channel is closed on a failure, whose close
        waits for the broker's reply."""
        self._frames.clear()
        self._transport._write = self._send

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Writes go straight out meanwhile: for a method that waits for
        its reply (a declare), which must not sit in the gathered frames."""
        self._transport._write = self._send
        try:
            yield
        finally:
            self._transport._write = self._gather


class _Direct:
    """No gathering: every write goes out at once."""

    def flush(self) -> None:
        pass

    def stop(self) -> None:
        pass

    @contextmanager
    def paused(self) -> Iterator[None]:
        yield


@contextmanager
def coalesced_writes(connection: Any, limit: int = COALESCE_BYTES) -> Iterator[Gathering | _Direct]:
    """Gather what py-amqp writes on ``connection`` (a py-amqp
    ``Connection``) until the yielded gathering's ``flush``, which must be
    called before the block ends. Frames still gathered when the block
    raises are dropped, never sent: their messages were not confirmed
    either. Where the transport is not a plain TCP one, writes go straight
    through."""
    transport: Any = getattr(connection, "transport", None)
    if not _plain_tcp(transport):
        yield _Direct()
        return
    gathering = Gathering(transport, limit)
    transport._write = gathering._gather
    try:
        yield gathering
    finally:
        transport._write = gathering._send
