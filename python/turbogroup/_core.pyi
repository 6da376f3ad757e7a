"""Type stubs for the compiled ``turbogroup._core`` module."""

from collections.abc import Callable, Iterable, Mapping
from typing import Any

__version__: str

LEAF: int
"""Shape code of a leaf in :func:`freeze_unroll_order`."""

def uuid4() -> str:
    """One new uuid4 string (lower-case, hyphenated)."""

def uuid4_batch(n: int) -> list[str]:
    """``n`` new uuid4 strings from one read of OS randomness."""

def freeze_unroll_order(shape: list[int]) -> list[int]:
    """Leaf numbers in Celery 5.7.0's ``group._freeze_unroll`` order.

    ``shape`` is the group's pre-order shape: ``LEAF`` for a task, ``n >= 0``
    for a nested group of ``n`` children. Raises ``ValueError`` on a
    malformed shape.
    """

def decode_json_batch(payloads: list[bytes | None]) -> tuple[list[Any], list[int]]:
    """Parse JSON payloads as ``json.loads`` would (GIL released).

    Returns ``(values, needs_python)``: ``values[i]`` is the decoded payload,
    or None for a missing payload and for every index in ``needs_python``,
    which the caller decodes with kombu (kombu-tagged values, ``NaN``,
    ``Infinity``, lone surrogates, invalid JSON).
    """

class Barrier:
    """vine.barrier's counter in Rust; see ``turbogroup.barrier.barrier``."""

    p: Any
    size: int
    _value: int
    ready: bool
    failed: bool
    cancelled: bool
    finalized: bool
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    reason: Any
    def __new__(
        cls,
        promises: Iterable[Any] | None = None,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        callback: Callable[..., Any] | None = None,
        size: int | None = None,
    ) -> Barrier: ...
    def __call__(self, *args: Any, **kwargs: Any) -> None: ...
    def finalize(self) -> None: ...
    def cancel(self) -> None: ...
    def add_noincr(self, p: Any) -> None: ...
    def add(self, p: Any) -> None: ...
    def then(self, callback: Any, errback: Any = None) -> None: ...
    def throw(self, *args: Any, **kwargs: Any) -> None: ...
    def throw1(self, *args: Any, **kwargs: Any) -> None: ...

__all__ = ["LEAF", "Barrier", "decode_json_batch", "freeze_unroll_order", "uuid4", "uuid4_batch"]
