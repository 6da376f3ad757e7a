"""Type stubs for the compiled ``turbogroup._core`` module."""

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal, TypeAlias, final, overload

from typing_extensions import Unpack, disjoint_base

# ``(task_id, group_index, args, kwargs[, chain[, clock]])``, or a longer
# tuple (turbogroup's ``AlikeChild``) whose first six items these are; a
# missing or None ``chain`` (a chain member's rest) or ``clock`` (its
# ``(eta, expires, expiration)``, each a str or None) keeps the template's.
_AlikeItem: TypeAlias = tuple[str, int | None, Any, Any, Unpack[tuple[Any, ...]]]

__version__: str

LEAF: int
#: The headers Celery's ``as_task_v2`` writes, in its order (the encoder's).
STANDARD_HEADERS: tuple[str, ...]
"""Shape code of a leaf in :func:`freeze_unroll_order`."""

def uuid4() -> str:
    """One new uuid4 string (lower-case, hyphenated)."""

def uuid4_batch(n: int) -> list[str]:
    """``n`` new uuid4 strings from one read of OS randomness."""

@final
class TaskIds:
    """A group's task ids in order, kept compactly (16 bytes for an id in
    ``kombu.utils.uuid.uuid()``'s form); each comes back as it was added
    (an id that is not a string as its object)."""

    def __init__(self) -> None: ...
    def append(self, task_id: object) -> None: ...
    def extend(self, task_ids: Iterable[object]) -> None: ...
    def __iter__(self) -> Iterator[Any]: ...
    def __len__(self) -> int: ...
    def __getitem__(self, index: int, /) -> Any:
        """As a list indexes (a negative index counts from the end)."""

    def tolist(self) -> list[Any]:
        """Every id, in order, as a new list."""

def freeze_unroll_order(shape: list[int]) -> list[int]:
    """Leaf numbers in Celery 5.7.0's ``group._freeze_unroll`` order.

    ``shape`` is the group's pre-order shape: ``LEAF`` for a task, ``n >= 0``
    for a nested group of ``n`` children. Raises ``ValueError`` on a
    malformed shape.
    """

@disjoint_base
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

@final
class QuickFulfilment:
    """The short path of ``turbogroup.collect.settle`` in Rust: caches each
    SUCCESS meta on its result and fires its ``on_ready`` promise, as
    ``settle._fulfil_success`` does, stopping at the first result that needs
    the Python path."""

    def __new__(
        cls,
        promise_type: type,
        on_fulfilled: Callable[..., Any],
        kinds: dict[type, bool],
        tracked: tuple[Any, tuple[Any, ...]] | None = None,
    ) -> QuickFulfilment: ...
    def run(
        self, nodes: list[Any], decoded: list[Any], start: int, out: list[Any]
    ) -> tuple[int, int]:
        """Settles ``nodes[start:]``, appending each meta to ``out``; returns
        (the index of the first node left to Python, or the end of the
        shorter list; how many were fulfilled here)."""

@final
class AlikeQueue:
    """The per-child loop of ``turbogroup.plain.PlainDispatch`` for a run of
    children of one kind, in Rust: each is
    queued as ``PlainDispatch._alike`` queues it, stopping before the first
    child that needs the Python loop."""

    def __new__(
        cls,
        signature_type: type,
        child_type: type,
        tuple_new: Callable[..., Any],
        no_kwargs: dict[str, Any],
    ) -> AlikeQueue: ...
    def run(self, tasks: Sequence[Any], start: int, stop: int, run: Any, ids: TaskIds) -> int:
        """Queues ``tasks[start:stop]`` while each is a child of ``run``'s
        kind (a ``plain.AlikeRun``), appending its id to ``ids``; returns
        the index of the first child left to Python, or ``stop``."""

def decode_json_payloads(
    payloads: list[Any],
) -> tuple[list[Any], list[int], list[int]]:
    """``(values, suspects, refused)``: each payload (bytes, or None where
    nothing is stored) parsed as ``jiter.from_json`` parses it, None where
    missing or refused; ``suspects``, the parsed payloads holding kombu's
    type tag or a ``\\u`` escape; ``refused``, those the parser refused or
    that are not bytes."""

def mget_commands(prefix: str, ids: list[Any], chunk: int) -> list[bytes]:
    """``MGET`` of ``prefix + id`` for every id, ``chunk`` keys per command,
    each packed as hiredis's ``pack_command`` packs it (UTF-8). Raises
    ``TypeError`` when an id is not a ``str``, ``ValueError`` for a chunk
    of 0."""

def settle_stand_ins(
    nodes: list[Any], decoded: list[Any], exception_states: Any, not_fetched: object
) -> tuple[list[Any], list[int], int]:
    """``(out, later, newly)``: each stand-in's meta from its fetched
    payload (``turbogroup.lazy.LazyResults.settle_all``), a SUCCESS meta
    without children cached on it (``newly`` counts those), a meta neither
    ready nor an exception handed out uncached, a node already cached
    giving its cache, a missing payload a PENDING meta; ``later``, the
    indexes left to the caller (None in ``out``)."""

def undecided_payloads(payloads: list[Any]) -> list[int]:
    """The indexes of ``payloads`` (bytes, or None where nothing is
    stored) whose meta must be decoded to be known: all but None and the
    plain successes (valid JSON with status ``"SUCCESS"``, no children, no
    kombu type tag and no ``\\u`` escape anywhere)."""

def keep_plain_successes(
    nodes: list[Any], payloads: list[Any], undecided: list[int]
) -> tuple[list[Any], int]:
    """``(statuses, kept)``: each stand-in's plain success kept on it as
    its payload (``_raw``) unless it got a meta (``_meta``) or a payload
    meanwhile, a missing payload PENDING, None at the ``undecided``
    indexes (ascending); ``kept`` counts the payloads kept here
    (``turbogroup.lazy.LazyResults.settle_states``)."""

@final
class Unsupported:
    """Stands in for a message the encoder cannot reproduce byte for byte.

    Publish that message through Celery instead; ``reason`` says why (for
    the debug log).
    """

    @property
    def reason(self) -> str: ...

def encode_task_messages(
    messages: Iterable[dict[str, Any]],
    argsrepr_maxsize: int | None = 1024,
    kwargsrepr_maxsize: int | None = 1024,
    repr_maxlevels: int | None = 3,
) -> list[bytes | Unsupported]:
    """The kombu Redis envelopes Celery 5.7.0 would LPUSH for these tasks.

    One result per message: the exact bytes ``kombu.transport.redis``
    pushes (JSON body base64-encoded, Celery's protocol-v2 headers and
    kombu's properties, a fresh uuid4 ``delivery_tag``), or
    :class:`Unsupported` when a value's type is not rendered exactly (any
    type other than exact ``None/bool/int/float/str/bytes/list/tuple/dict``
    and ``datetime.datetime/date/time``, ``decimal.Decimal``, ``uuid.UUID``;
    in the JSON-only fields also ``dict`` subclasses such as Signatures), or
    when Celery itself would raise (bad dict keys, circular data, args not
    a list/tuple). The limits are ``app.amqp.argsrepr_maxsize``,
    ``kwargsrepr_maxsize`` and ``app.conf.task_repr_maxlevels``.

    Each message is a dict named after ``AMQP.as_task_v2``'s parameters,
    with what Celery derives from the clock, app and route resolved:
    ``task_id`` and ``name`` (str, required); ``args``, ``kwargs`` (falsy
    -> empty, as Celery does); ``shadow``, ``eta`` and ``expires`` (ISO
    strings or None), ``group_id``, ``group_index``, ``retries`` (0),
    ``time_limit``, ``soft_time_limit``, ``root_id`` (falsy -> task id),
    ``parent_id``, ``argsrepr``/``kwargsrepr`` (None -> saferepr),
    ``origin`` (``origin or anon_nodename()``), ``ignore_result`` (False),
    ``replaced_task_nesting`` (0), ``stamped_headers``, ``stamps`` ({}),
    ``headers`` (extra headers, merged like ``dict.update``),
    ``callbacks``, ``errbacks``, ``chain``, ``chord``, ``reply_to`` (""),
    ``properties`` (the leftover ``apply_async`` options Celery puts in
    the message properties, in order), ``delivery_mode`` (2),
    ``expiration`` (``str(int(expires_s * 1000))`` or None), ``priority``
    (0), ``exchange`` ("") and ``routing_key``. Raises ``ValueError`` /
    ``TypeError`` for an unknown or missing key or an unresolved
    ``eta``/``expires``/``expiration``. A ``task_id`` that is not a str
    (Celery sends an int or a ``UUID`` as it is) gives ``Unsupported``.
    """

@overload
def encode_alike_messages(
    template: dict[str, Any],
    items: Iterable[_AlikeItem],
    argsrepr_maxsize: int | None = 1024,
    kwargsrepr_maxsize: int | None = 1024,
    repr_maxlevels: int | None = 3,
    check: Literal[False] = False,
    headers: Iterable[dict[str, Any] | None] | None = None,
) -> list[bytes | Unsupported]: ...
@overload
def encode_alike_messages(
    template: dict[str, Any],
    items: Iterable[_AlikeItem],
    argsrepr_maxsize: int | None = 1024,
    kwargsrepr_maxsize: int | None = 1024,
    repr_maxlevels: int | None = 3,
    *,
    check: Literal[True],
    headers: Iterable[dict[str, Any] | None] | None = None,
) -> list[Unsupported | None]:
    """``encode_task_messages`` for messages equal to ``template`` (a
    message dict as that function takes) but for each item's
    ``(task_id, group_index, args, kwargs[, chain[, clock]])``: the
    template is read once.
    With ``check``, a message that encodes gives None instead of its bytes
    (the caller only wants to know which are ``Unsupported``).
    ``headers``, one per item in order, are the headers each adds after
    the template's (None or ``{}``: none), as ``dict.update`` adds them."""

@overload
def amqp_alike_parts(
    template: dict[str, Any],
    items: Iterable[_AlikeItem],
    argsrepr_maxsize: int | None = 1024,
    kwargsrepr_maxsize: int | None = 1024,
    repr_maxlevels: int | None = 3,
    check: Literal[False] = False,
) -> list[tuple[bytes, str | None, str | None] | Unsupported]: ...
@overload
def amqp_alike_parts(
    template: dict[str, Any],
    items: Iterable[_AlikeItem],
    argsrepr_maxsize: int | None = 1024,
    kwargsrepr_maxsize: int | None = 1024,
    repr_maxlevels: int | None = 3,
    *,
    check: Literal[True],
) -> list[int | Unsupported]:
    """What each alike message's AMQP form takes from its item: the JSON
    body kombu would serialize (``[args, kwargs, embed]``) and the
    ``argsrepr``/``kwargsrepr`` headers Celery would compute (None where
    ``template`` sets them). ``template`` needs ``task_id``, ``name`` and
    the embed fields (``callbacks``, ``errbacks``, ``chain``, ``chord``).
    With ``check``, each message that encodes gives its body's size."""

def lpush_alike_command(
    key: str,
    template: dict[str, Any],
    items: Iterable[_AlikeItem],
    argsrepr_maxsize: int | None = 1024,
    kwargsrepr_maxsize: int | None = 1024,
    repr_maxlevels: int | None = 3,
    headers: Iterable[dict[str, Any] | None] | None = None,
) -> bytes:
    """The Redis protocol bytes of ``LPUSH key <envelope>...`` for the
    messages ``encode_alike_messages`` gives (as redis-py would pack the
    command). Raises ``ValueError`` if one of them is ``Unsupported``: the
    caller checked them first."""

def task_reprs(
    args: Any,
    kwargs: Any,
    argsrepr_maxsize: int | None = 1024,
    kwargsrepr_maxsize: int | None = 1024,
    repr_maxlevels: int | None = 3,
) -> tuple[str, str] | Unsupported:
    """Celery's ``argsrepr`` and ``kwargsrepr`` headers for these arguments,
    as ``as_task_v2`` computes them with ``saferepr`` (falsy ``args`` and
    ``kwargs`` are ``()`` and ``{}``), or :class:`Unsupported` when a value
    is of a type the encoder does not render exactly."""

def lpush_command(key: str, values: list[bytes]) -> bytes:
    """The Redis protocol bytes of ``LPUSH key values...``."""

__all__ = [
    "LEAF",
    "STANDARD_HEADERS",
    "AlikeQueue",
    "Barrier",
    "QuickFulfilment",
    "TaskIds",
    "Unsupported",
    "__version__",
    "amqp_alike_parts",
    "decode_json_payloads",
    "encode_alike_messages",
    "encode_task_messages",
    "freeze_unroll_order",
    "keep_plain_successes",
    "lpush_alike_command",
    "lpush_command",
    "mget_commands",
    "settle_stand_ins",
    "task_reprs",
    "undecided_payloads",
    "uuid4",
    "uuid4_batch",
]
