"""When turbogroup's fast paths may run instead of Celery's own code.

The fast paths reproduce what Celery and kombu do inside (how a message is
laid out and routed, how a result meta is stored and cached) as they are in
the versions turbogroup is tested against. A Celery or kombu release outside
those, or an install made with ``--no-deps``, may have changed an internal
we reproduce and would then be sent or read differently without a word. So
outside the tested versions Celery's own path runs and one WARNING per
process says why; an app that has tested its versions itself can set
``turbogroup_allow_untested_versions = True``.

App configuration, in Celery's style (``app.conf``):

``turbogroup_fast_path`` (default True)
    False runs Celery's own path for every dispatch and collection, for
    troubleshooting: the semantics are the same, only slower.
``turbogroup_allow_untested_versions`` (default False)
    True uses the fast paths with any Celery 5.7.x / kombu 5.7.x.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from functools import cache, partial
from types import CellType, FunctionType, ModuleType
from typing import Any, NamedTuple, cast

import celery
import celery.app.amqp
import celery.app.base
import celery.app.task
import celery.app.utils
import celery.canvas
import kombu
import kombu.messaging
from celery import Celery, Signature
from celery.app.amqp import AMQP
from celery.app.task import Task
from celery.app.utils import Settings
from kombu import Producer

logger = logging.getLogger("turbogroup")

#: The releases the fast paths were built and tested against.
TESTED_VERSIONS = {"celery": ("5.7.0",), "kombu": ("5.7.0",)}

_warned: set[str] = set()
_warned_lock = threading.Lock()


@cache
def untested_versions() -> str | None:
    """Why the installed Celery/kombu are outside the tested ones, or None."""
    installed = {"celery": celery.__version__, "kombu": kombu.__version__}
    odd = [
        f"{name} {version}"
        for name, version in installed.items()
        if version not in TESTED_VERSIONS[name]
    ]
    if not odd:
        return None
    tested = ", ".join(f"{name} {' or '.join(v)}" for name, v in TESTED_VERSIONS.items())
    return f"{' and '.join(odd)} installed; the fast path is tested with {tested}"


def warn_once(reason: str) -> None:
    """One WARNING per process per reason."""
    with _warned_lock:
        if reason in _warned:
            return
        _warned.add(reason)
    logger.warning("turbogroup: Celery's own path runs: %s", reason)


_MISSING = object()
# The key spellings Celery's app settings try, by key (old and new names).
_SPELLINGS: dict[str, tuple[str, ...]] = {}


def unproxied(obj: Any) -> Any:
    """The object itself where Celery hands a proxy of it
    (``celery.local.Proxy``): its ``current_app`` (a group whose first
    child is an empty chain, a signature with no app), a ``shared_task``.
    The fast paths match apps and tasks by identity."""
    get = getattr(type(obj), "_get_current_object", None)
    return get(obj) if get is not None else obj


def setting(conf: Any, key: str, default: Any = None) -> Any:
    """``conf.get(key, default)`` for an app's ``conf``, read the way
    Celery's ``ConfigurationView.__getitem__`` reads it but without its
    ``KeyError`` per miss: each map in order, each of the key's spellings
    in order (the key, its new name, its old name). Each read costs
    3-5 µs through Celery's code, and a dispatch makes over a dozen.

    Only for Celery's own ``Settings`` with plain dicts as maps and no
    prefix or key transform, and not for the keys ``Settings`` computes
    (properties); anything else is read by Celery's ``get``. Nothing is
    cached but the spellings: a change to the configuration is seen by the
    next read."""
    state = conf.__dict__
    if (
        type(conf) is not Settings
        or state.get("prefix") is not None
        or state.get("key_t") is not None
        or state.get("_keys") != _CELERY_KEY_SPELLINGS
        or key in _SETTINGS_PROPERTIES
    ):
        return conf.get(key, default)
    spellings = _SPELLINGS.get(key)
    if spellings is None:
        spellings = _SPELLINGS[key] = (key, *(f(key) for f in _CELERY_KEY_SPELLINGS))
    for mapping in state["maps"]:
        if type(mapping) is not dict:
            return conf.get(key, default)
        for spelling in spellings:
            value = mapping.get(spelling, _MISSING)
            if value is not _MISSING:
                return value
    return default


_CELERY_KEY_SPELLINGS = (celery.app.utils._old_key_to_new, celery.app.utils._new_key_to_old)
_SETTINGS_PROPERTIES = frozenset(
    name for name, value in vars(Settings).items() if isinstance(value, property)
)


def app_now(app: Any) -> Callable[[], datetime]:
    """What reads ``app.now()``. Celery's own ``Celery.now`` makes the
    current UTC time aware again (``to_utc``) and converts it to the app's
    timezone: the same instant in the same zone as
    ``datetime.now(app.timezone)``, which takes a sixth of its ~12 µs (the
    clock is read per message with countdown or expires). Anything else (an
    override, a test's frozen clock) is called as it is."""
    now = getattr(type(app), "now", None)
    if "now" in vars(app) or not defined_by(now, celery.app.base, "now"):
        return cast(Callable[[], datetime], app.now)
    # the datetime Celery's now reads (a test may patch it in that module)
    return partial(celery.app.base.datetime.now, app.timezone)


def argument_check(task: Task) -> Any:
    """What ``Task.apply_async`` checks a call's arguments with when the
    task has ``typing`` on (its ``__header__``), or None."""
    return getattr(task, "__header__", None) if task.typing else None


def fast_path_refusal(app: Any) -> str | None:
    """Why ``app`` must take Celery's own path for dispatch and collection,
    or None when turbogroup's fast paths may run."""
    conf = getattr(app, "conf", None)
    if conf is None:
        return None
    if not setting(conf, "turbogroup_fast_path", True):
        return "turbogroup_fast_path is False"
    reason = untested_versions()
    if reason is not None and not setting(conf, "turbogroup_allow_untested_versions", False):
        warn_once(f"{reason} (set turbogroup_allow_untested_versions=True to use it anyway)")
        return reason
    return None


def celery_retries_each_callback_publish() -> bool:
    """Whether Celery is publishing a finished task's callbacks (a group
    linked to a task, sent by the worker's ``trace``).

    Celery 5.7.0 sends those inside ``amqp._retry_publish``, whose context
    variable makes ``send_task_message`` publish each message through
    ``producer.publish`` with a retry loop of its own (capped retries,
    reconnecting, "Retrying refused callback publish"). A bulk publish
    would skip that loop, so Celery publishes such a group itself (its own
    test_trace pins it)."""
    flag = getattr(celery.app.amqp, "_callback_publish_retry", None)
    return bool(flag is not None and flag.get())


def _sender_code() -> Any:
    """The code of the ``send_task_message`` closure Celery's
    ``AMQP._create_task_sender`` returns (``app.amqp.send_task_message``)."""
    for const in AMQP._create_task_sender.__code__.co_consts:
        if getattr(const, "co_name", None) == "send_task_message":
            return const
    return None


_SENDER_CODE = _sender_code()


def defined_by(func: Any, module: ModuleType, name: str) -> bool:
    """Whether ``func`` is the function ``name`` that ``module``'s source
    defines. Decided by its code, not by identity with what was there when
    turbogroup was imported: a tracer's wrapper (``functools.wraps`` copies
    the name, not the code) is seen whichever was imported first."""
    code = getattr(func, "__code__", None)
    return code is not None and code.co_name == name and code.co_filename == module.__file__


def _wrapped(owner: type, name: str, module: ModuleType) -> bool:
    """Whether ``owner.name`` is not Celery's own code; says so once (a
    tracer's wrapper is run per child, on the batched recording path)."""
    func = getattr(owner, name, None)
    if defined_by(func, module, name):
        return False
    where = getattr(func, "__module__", None) or "unknown"
    code = getattr(func, "__code__", None)
    warn_once(
        f"{owner.__name__}.{name} is not Celery's own ({where}, "
        f"{code.co_filename if code else 'no code'}): it runs for each child, whose message "
        "is built by Celery's publish (batched, but not by the fast path)"
    )
    return True


def task_apply_async_is_celerys(task_class: type) -> bool:
    """Whether ``task_class.apply_async`` is ``celery.app.task.Task``'s, so
    that a fast path may build the message it would publish: Celery's own
    code, or what ``Task`` itself has (a wrapper there is checked once per
    dispatch, by ``publishing_is_celerys_own`` or ``publishing_wrappers``)."""
    func = getattr(task_class, "apply_async", None)
    return func is Task.apply_async or defined_by(func, celery.app.task, "apply_async")


def publishing_is_celerys_own(app: Any) -> bool:
    """Whether ``Task.apply_async``, ``Signature.apply_async``,
    ``app.send_task``, ``app.amqp.send_task_message`` and kombu's
    ``Producer.publish`` are Celery's and kombu's own code: the fast paths
    build the messages those would publish, so anything else there (a
    test's mock, a tracer's wrapper, an app subclass's override) must run,
    on Celery's path (or, for a wrapper of the usual shape, around the
    fast path: ``publishing_wrappers``)."""
    if any(_wrapped(*method) for method in _WRAPPABLE) or _wrapped(
        Signature, "apply_async", celery.canvas
    ):
        return False
    return _app_publishing_is_celerys(app)


def _app_publishing_is_celerys(app: Any) -> bool:
    """Whether ``app``'s own ``send_task`` and ``amqp.send_task_message``
    are Celery's (no override on the app, its class or its AMQP)."""
    app = unproxied(app)
    send_task = getattr(type(app), "send_task", None)
    if "send_task" in vars(app) or not (
        send_task is Celery.send_task or defined_by(send_task, celery.app.base, "send_task")
    ):
        return False
    amqp = app.amqp
    if type(amqp)._create_task_sender is not AMQP._create_task_sender:
        return False
    sender = vars(amqp).get("send_task_message")
    if sender is None:  # not made yet: Celery's cached_property will make it
        return getattr(type(amqp), "send_task_message", None) is vars(AMQP)["send_task_message"]
    return getattr(sender, "__code__", None) is _SENDER_CODE


class Wrapper(NamedTuple):
    """A wrapper a tracer put in place of one of Celery's or kombu's
    publishing methods, of the usual shape: a function that closes over the
    method it replaced (``original``, Celery's or kombu's own code) and calls
    it, as sentry-sdk's do. ``around(inner)`` is the same wrapper, its own
    code and state, calling ``inner`` instead (``publish/wrapped.py``)."""

    func: Any  # a FunctionType (a field of that type reads as a method)
    cell: int  # the closure cell holding ``original``
    original: Callable[..., Any]

    def around(self, inner: Callable[..., Any]) -> Callable[..., Any]:
        func = self.func
        cells = list(cast(tuple[CellType, ...], func.__closure__))
        cells[self.cell] = CellType(inner)
        around = FunctionType(
            func.__code__, func.__globals__, func.__name__, func.__defaults__, tuple(cells)
        )
        around.__kwdefaults__ = func.__kwdefaults__
        return around


class PublishingWrappers(NamedTuple):
    """``Task.apply_async``, ``Celery.send_task`` and ``Producer.publish``:
    each a ``Wrapper``, or None where it is Celery's or kombu's own."""

    apply_async: Wrapper | None
    send_task: Wrapper | None
    publish: Wrapper | None


# The methods a tracer wraps to see each publish, as (owner, name, module).
_WRAPPABLE = (
    (Task, "apply_async", celery.app.task),
    (Celery, "send_task", celery.app.base),
    (Producer, "publish", kombu.messaging),
)


def wrapper_of(func: Any, module: ModuleType, name: str) -> Wrapper | None:
    """``func`` as a ``Wrapper`` of ``module``'s own ``name``, when exactly
    one of its closure cells holds that function; else None."""
    if type(func) is not FunctionType or not func.__closure__:
        return None
    held = []
    for i, cell in enumerate(func.__closure__):
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        if defined_by(value, module, name):
            held.append(i)
    if len(held) != 1:
        return None
    return Wrapper(func, held[0], func.__closure__[held[0]].cell_contents)


def publishing_wrappers(app: Any) -> PublishingWrappers | None:
    """The wrappers of ``Task.apply_async``, ``Celery.send_task`` and
    ``Producer.publish``, when at least one is wrapped, each wrapped one is
    a ``Wrapper`` of Celery's or kombu's own code, and everything else that
    publishes is Celery's own (``publishing_is_celerys_own``); else None."""
    found: list[Wrapper | None] = []
    for owner, name, module in _WRAPPABLE:
        func = getattr(owner, name, None)
        if defined_by(func, module, name):
            found.append(None)
            continue
        wrapper = wrapper_of(func, module, name)
        if wrapper is None:
            return None
        found.append(wrapper)
    if not any(found) or not defined_by(Signature.apply_async, celery.canvas, "apply_async"):
        return None
    if not _app_publishing_is_celerys(app):
        return None
    return PublishingWrappers(*found)


def keep_confirms_while_closing(channel: Any) -> None:
    """Let a py-amqp channel take publisher confirms while it closes.

    py-amqp drops every method a closing channel receives except
    Channel.Close/CloseOk. RabbitMQ can still confirm messages then: with
    the connection closed by the broker mid-dispatch, seven acks for
    messages it had queued arrived while the confirm channel was closing,
    and were lost, so those seven were reported unconfirmed (a resend would
    have queued them twice). Those acks are real; let them through."""
    from amqp import spec

    allowed = type(channel)._ALLOWED_METHODS_WHEN_CLOSING
    channel._ALLOWED_METHODS_WHEN_CLOSING = (*allowed, spec.Basic.Ack, spec.Basic.Nack)


def fast_path_enabled(app: Any) -> bool:
    """``fast_path_refusal(app) is None``, the refusal logged at DEBUG."""
    reason = fast_path_refusal(app)
    if reason is not None:
        logger.debug("turbogroup: Celery's own path: %s", reason)
    return reason is None


def chain_start_is_celerys(chain_class: type) -> bool:
    """Whether a chain class starts as ``celery.canvas._chain`` does: its
    ``apply_async`` and ``run`` are Celery's own code (``chains.py``
    reproduces them; anything else runs as it is)."""
    return defined_by(
        getattr(chain_class, "apply_async", None), celery.canvas, "apply_async"
    ) and defined_by(getattr(chain_class, "run", None), celery.canvas, "run")
