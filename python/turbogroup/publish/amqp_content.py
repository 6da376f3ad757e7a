"""Whether py-amqp writes a recorded message's content header (its
properties, the headers table among them) for certain.

py-amqp serializes the properties only when it writes the frames, and a
value it has no AMQP type for, or a short string over 255 bytes, raises
there: mid-dispatch, after earlier messages were sent. So every record is
checked when it is built (``ConfirmBatch.check``). Serializing it to find
out costs more than a message's share of the dispatch with a tracer on;
most messages hold only values py-amqp 5 writes whatever they are (short
str, small int, None, bool, float, and lists and dicts of those), which a
scan of their types tells. Any other value, and the message is serialized
as before to find out. (A child recorded by its kind's recipe is checked
for what it adds to its kind's first record alone:
``amqp_records.table_is_plain``, with these same rules.)
"""

from __future__ import annotations

from typing import Any

from amqp.basic_message import Message

# property -> its AMQP type, as py-amqp writes them (only these are written)
PROPERTY_TYPES: dict[str, str] = dict(Message.PROPERTIES)
# A str of at most this many characters is a short string (< 256 bytes)
# whatever it holds: 4 bytes a character at most in UTF-8.
SHORT_STR_CHARS = 63
LONG_LONG = 2**63


def writes_for_certain(record_args: tuple[Any, ...]) -> bool:
    """Whether py-amqp's content header of the message kombu's
    ``Producer._publish`` makes of these recorded arguments (body,
    priority, content type and encoding, headers, properties, ...) is
    written without an error for certain (False: it may not be)."""
    _, priority, content_type, content_encoding, headers, properties = record_args[:6]
    if not (
        octet(priority)
        and short_str(content_type)
        and short_str(content_encoding)
        and (headers is None or table_writes(headers))
    ):
        return False
    for key, value in (properties or {}).items():
        kind = PROPERTY_TYPES.get(key)
        if kind is None or value is None:
            continue  # not written
        if not (
            (kind == "s" and short_str(value))
            or (kind == "o" and octet(value))
            or (kind == "L" and type(value) is int and 0 <= value < 2 * LONG_LONG)
        ):
            return False
    return True


def short_str(value: Any) -> bool:
    """Whether py-amqp writes ``value`` as a short string for certain."""
    if not value:
        return True  # written as ''
    kind = type(value)
    if kind is str:
        return len(value) <= SHORT_STR_CHARS or len(value.encode("utf-8", "surrogatepass")) < 256
    return kind is bytes and len(value) < 256


def octet(value: Any) -> bool:
    return value is None or (type(value) is int and 0 <= value < 256)


# values written whatever they hold (None's type too)
ANY_VALUE = frozenset({str, bytes, bool, float, type(None)})


def table_writes(table: Any) -> bool:
    """Whether py-amqp writes ``table`` as a field table for certain."""
    if type(table) is not dict:
        return False
    for key, value in table.items():  # a loop: ~3x a generator's speed here
        if type(key) is str:
            if len(key) > SHORT_STR_CHARS and not short_str(key):
                return False
        elif type(key) is not bytes or len(key) > 255:
            return False
        if type(value) not in ANY_VALUE and not item_writes(value):
            return False
    return True


def item_writes(value: Any) -> bool:
    """Whether py-amqp writes ``value`` as a table's field for certain."""
    kind = type(value)
    if kind in ANY_VALUE:
        return True
    if kind is int:
        return -LONG_LONG <= value < LONG_LONG
    if kind is list or kind is tuple:
        return all(map(item_writes, value))
    return kind is dict and table_writes(value)


__all__ = ["item_writes", "short_str", "table_writes", "writes_for_certain"]
