"""Result payloads decoded in bulk, exactly as kombu's ``json.loads`` would.

Parsed by jiter (JSON straight to Python objects, in Rust). Measured on
100,000 stored result metas in one run (``benches/decode_libraries.py``),
jiter took 0.83-0.91x the time of the hand-written Rust parser this
replaced and orjson 0.91-0.97x, so the library earned the place.

jiter gives ``json.loads``'s objects for every document it accepts (NaN
and Infinity included) and raises where it reads differently (lone
surrogate escapes, nesting past its recursion limit, anything invalid).
What it cannot promise is handed back to the caller for kombu's decoder:

- kombu's tagged values (``{"__type__": ..., "__value__": ...}`` objects,
  which its object hook turns into datetimes, Decimals, UUIDs, bytes);
- a payload jiter refuses, so that kombu raises its own error or reads it
  its own way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from jiter import from_json

_TAG = b"__type__"
# A key can spell its characters as \u escapes: such payloads have their
# decoded objects searched too.
_ESCAPE = b"\\u"
_TAGGED = {"__type__", "__value__"}


def _has_tagged(value: Any) -> bool:
    """Whether kombu's object hook would turn any object in ``value`` into
    something else: one whose keys are exactly ``__type__`` and
    ``__value__``."""
    if isinstance(value, dict):
        return value.keys() == _TAGGED or any(_has_tagged(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_tagged(v) for v in value)
    return False


def decode_json_batch(payloads: Sequence[bytes | None]) -> tuple[list[Any], list[int]]:
    """``(values, needs_kombu)``: ``values[i]`` is what ``json.loads`` gives
    for ``payloads[i]``, or None for a missing payload or one listed in
    ``needs_kombu`` (the indexes the caller must decode with kombu)."""
    # The common batch: every payload parses, and none holds a tag or an
    # escape anywhere (one search over them all instead of two per payload).
    try:
        if None in payloads:
            values = [None if p is None else from_json(p) for p in payloads]
        else:  # every result stored: at C speed
            values = list(map(from_json, cast(Sequence[bytes], payloads)))
    except ValueError:
        return _decode_one_by_one(payloads)
    joined = b"".join(filter(None, payloads))
    if _TAG not in joined and _ESCAPE not in joined:
        return values, []
    # Somewhere a tag or an escape: the parsed values of the payloads that
    # hold one are searched (nothing is parsed again).
    needs_kombu = [
        i
        for i, payload in enumerate(payloads)
        if payload is not None
        and (_TAG in payload or _ESCAPE in payload)
        and _has_tagged(values[i])
    ]
    for i in needs_kombu:
        values[i] = None
    return values, needs_kombu


def _decode_one_by_one(payloads: Sequence[bytes | None]) -> tuple[list[Any], list[int]]:
    """A batch with a payload jiter refuses: each parsed on its own."""
    values: list[Any] = []
    needs_kombu: list[int] = []
    for i, payload in enumerate(payloads):
        value = None
        if payload is not None:
            try:
                value = from_json(payload)
            except ValueError:
                needs_kombu.append(i)
            else:
                if (_TAG in payload or _ESCAPE in payload) and _has_tagged(value):
                    value = None
                    needs_kombu.append(i)
        values.append(value)
    return values, needs_kombu
