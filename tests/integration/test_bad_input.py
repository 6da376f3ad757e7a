"""Bad input is refused before any message leaves (all or nothing).

Each case dispatches a group with one bad child among good ones, on real
Redis and real RabbitMQ, and checks that turbogroup raises the exception
type Celery 5.7.0 raises for the same group, names the child (its position
in dispatch order and its task) on the exception, and that the queue is
still empty. Celery's own group is run on the same input for the type, and
is shown to have sent the children before the bad one: that is the
difference the test pins.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
from amqp.exceptions import AccessRefused, FrameSyntaxError
from celery import Celery, chain
from celery.canvas import Signature
from celery.canvas import group as celery_group
from kombu import Connection
from kombu.exceptions import EncodeError, OperationalError

from tests.conftest import REDIS_BROKER_DB
from turbogroup import group
from turbogroup.errors import MessageTooLargeError

TRANSPORTS = ("redis", "amqp")
BAD_AT = 3  # the bad child's position in every mixed group


@dataclass
class Case:
    name: str
    #: builds the group from (app, group class)
    build: Callable[[Celery, type], Any]
    error: type[BaseException]
    #: where the note must point: (position, task name or None when the
    #: child could not be produced); None for errors of the whole dispatch
    child: tuple[int, str | None] | None = (BAD_AT, "t.add")
    options: dict[str, Any] = field(default_factory=dict)
    conf: dict[str, Any] = field(default_factory=dict)
    transports: tuple[str, ...] = TRANSPORTS
    #: Celery sends the children before the bad one (False: it fails first)
    celery_sends_some: bool = True
    broker_url: Callable[[str], str] | None = None


def mixed(bad: Callable[[Celery], Any]) -> Callable[[Celery, type], Any]:
    """Good children 0..BAD_AT-1, the bad one, then two good ones."""

    def build(app: Celery, cls: type) -> Any:
        children = [app.add.s(i, i) for i in range(BAD_AT)]
        children += [bad(app), app.add.s(8, 8), app.add.s(9, 9)]
        return cls(children)

    return build


def failing_generator(app: Celery, cls: type) -> Any:
    def children() -> Iterator[Any]:
        for i in range(BAD_AT):
            yield app.add.s(i, i)
        raise RuntimeError("the generator gave up")

    return cls(children())


def nested(app: Celery, cls: type) -> Any:
    # unrolled: 0, 1, [2, 3 (bad)], 4
    inner = cls(app.add.s(2, 2), app.add.s(object(), 1))
    return cls(app.add.s(0, 0), app.add.s(1, 1), inner, app.add.s(4, 4))


def after_chains(app: Celery, cls: type) -> Any:
    """Chains as the good children: their messages are in the batch too."""
    children = [chain(app.add.s(i, i), app.add.s(1)) for i in range(BAD_AT)]
    children += [app.add.s(object(), 1), app.add.s(8, 8)]
    return cls(children)


def chains_of_one_shape(app: Celery, cls: type) -> Any:
    """A bad argument in a chain built from the shape's first chain (on
    Redis), then chains and a plain child after it."""
    children = [chain(app.add.s(i, i), app.add.s(1)) for i in range(BAD_AT)]
    children += [chain(app.add.s(object(), 1), app.add.s(1))]
    children += [chain(app.add.s(8, 8), app.add.s(1)), app.add.s(9, 9)]
    return cls(children)


def raw(app: Celery, task: str, args: Any = (), kwargs: Any = None) -> Signature:
    """A signature whose args/kwargs are set as given, unchecked (as a
    deserialized or hand-edited one can be)."""
    sig = Signature(task, app=app)
    sig["args"] = args
    sig["kwargs"] = {} if kwargs is None else kwargs
    return sig


class Opaque:
    """A value no serializer Celery is configured with can encode."""


HUGE = 129 * 1024 * 1024  # over RabbitMQ's default max_message_size (128 MiB)

CASES = [
    Case("object() argument", mixed(lambda app: app.add.s(object(), 1)), EncodeError),
    Case("object() keyword argument", mixed(lambda app: app.add.s(1, y=object())), EncodeError),
    Case("a set argument", mixed(lambda app: app.add.s({1, 2}, 1)), EncodeError),
    Case("a user class argument", mixed(lambda app: app.add.s(Opaque(), 1)), EncodeError),
    Case(
        "object() nested deep in an argument",
        mixed(lambda app: app.add.s({"a": [1, {"b": (2, object())}]}, 1)),
        EncodeError,
    ),
    Case(
        "an unserializable header (Redis)",
        mixed(lambda app: app.add.s(1, 1).set(headers={"x": object()})),
        TypeError,  # from the transport's JSON envelope, as with Celery
        transports=("redis",),
    ),
    Case(
        "an unserializable header (RabbitMQ)",
        mixed(lambda app: app.add.s(1, 1).set(headers={"x": object()})),
        FrameSyntaxError,  # py-amqp's header table encoder, as with Celery
        transports=("amqp",),
    ),
    Case("too many arguments (task.typing)", mixed(lambda app: app.add.s(1, 2, 3)), TypeError),
    Case("a missing argument (task.typing)", mixed(lambda app: app.add.s()), TypeError),
    Case("an unknown keyword (task.typing)", mixed(lambda app: app.add.s(1, z=2)), TypeError),
    Case(
        "args that are not a list or tuple",
        mixed(lambda app: raw(app, "t.untyped", args=5)),
        TypeError,
        child=(BAD_AT, "t.untyped"),
    ),
    Case(
        "kwargs that are not a dict",
        mixed(lambda app: raw(app, "t.untyped", kwargs=[1])),
        TypeError,
        child=(BAD_AT, "t.untyped"),
    ),
    Case(
        "a countdown that is not a number",
        mixed(lambda app: app.add.s(1, 1).set(countdown="soon")),
        TypeError,
    ),
    Case(
        "an eta that is not a datetime",
        mixed(lambda app: app.add.s(1, 1).set(eta=5)),
        AttributeError,
    ),
    Case(
        "an expires that does not parse",
        mixed(lambda app: app.add.s(1, 1).set(expires="someday")),
        ValueError,
    ),
    Case(
        "a non-signature child (an int)",
        mixed(lambda app: 42),
        AttributeError,
        child=(BAD_AT, None),
    ),
    Case(
        "a dict child that is not a signature",
        mixed(lambda app: {"not": "a signature"}),
        TypeError,
        child=(BAD_AT, None),
    ),
    Case(
        "a generator that raises halfway",
        failing_generator,
        RuntimeError,
        child=(BAD_AT, None),
    ),
    Case("a bad child inside a nested group", nested, EncodeError),
    Case("a bad child after chains", after_chains, EncodeError),
    Case(
        "a chain of a known shape with a bad argument",
        chains_of_one_shape,
        EncodeError,
        child=(BAD_AT, "celery.chain"),
    ),
    Case(
        "a chain whose first task has a bad argument",
        mixed(lambda app: chain(app.add.s(object(), 1), app.add.s(1))),
        EncodeError,
        child=(BAD_AT, "celery.chain"),
    ),
    Case(
        "partial args that cannot be serialized",
        lambda app, cls: cls(raw(app, "t.untyped", (1,)) for _ in range(5)),
        EncodeError,
        child=(0, "t.untyped"),
        options={"args": (object(),)},
        celery_sends_some=False,
    ),
    Case(
        "an unknown queue (task_create_missing_queues=False)",
        mixed(lambda app: app.add.s(1, 1).set(queue="no-such-queue")),
        KeyError,
        conf={"task_create_missing_queues": False},
    ),
    Case(
        "an argument over the broker's max_message_size",
        mixed(lambda app: app.add.s("x" * HUGE, 1)),
        MessageTooLargeError,
        transports=("amqp",),
        celery_sends_some=None,  # Celery's publish makes RabbitMQ close the channel
    ),
    Case(
        "the broker is down",
        mixed(lambda app: app.add.s(1, 1)),
        OperationalError,
        child=None,
        options={"retry_policy": {"max_retries": 1, "interval_start": 0}},
        broker_url=lambda url: (
            url.replace(url.split("@")[-1].split("/")[0], "127.0.0.1:1")
            if "@" in url
            else "redis://127.0.0.1:1/0"
        ),
        celery_sends_some=False,
    ),
    Case(
        "invalid credentials (Redis)",
        mixed(lambda app: app.add.s(1, 1)),
        OperationalError,
        child=None,
        options={"retry_policy": {"max_retries": 1, "interval_start": 0}},
        broker_url=lambda url: url.replace("redis://", "redis://nosuchuser:wrong@"),
        transports=("redis",),
        celery_sends_some=False,
    ),
    Case(
        "invalid credentials (RabbitMQ)",
        mixed(lambda app: app.add.s(1, 1)),
        AccessRefused,  # not retried, not wrapped: as with Celery
        child=None,
        options={"retry_policy": {"max_retries": 1, "interval_start": 0}},
        broker_url=lambda url: url.replace("guest:guest@", "guest:wrong@"),
        transports=("amqp",),
        celery_sends_some=False,
    ),
]


@pytest.fixture
def make_app(redis_url, amqp_url, unique_name):
    apps: list[tuple[Celery, str]] = []

    def make(transport: str, conf: dict[str, Any], broker_url: Any) -> Celery:
        url = f"{redis_url}/{REDIS_BROKER_DB}" if transport == "redis" else amqp_url
        queue = f"{unique_name}-{len(apps)}"
        app = Celery("turbogroup-bad-input", set_as_current=False)
        app.conf.update(
            broker_url=broker_url(url) if broker_url else url,
            task_default_queue=queue,
            broker_connection_retry_on_startup=False,
            broker_connection_timeout=2,
            **conf,
        )

        @app.task(shared=False, name="t.add")
        def add(x, y):
            return x + y

        @app.task(shared=False, name="t.untyped", typing=False)
        def untyped(*args, **kwargs):
            return args, kwargs

        app.add, app.queue = add, queue
        apps.append((app, url))
        return app

    yield make
    for app, url in apps:
        drop_queue(url, app.queue)
        app.close()


def queued(url: str, queue: str) -> int:
    if url.startswith("redis"):
        client = redis.Redis.from_url(url)
        try:
            return sum(client.llen(key) for key in client.scan_iter(match=f"{queue}*"))
        finally:
            client.close()
    with Connection(url) as conn:
        channel = conn.channel()
        try:
            return channel.queue_declare(queue, passive=True).message_count
        except conn.channel_errors:
            return 0  # never declared: nothing was sent
        finally:
            if channel.connection is not None:
                channel.close()


def drop_queue(url: str, queue: str) -> None:
    if url.startswith("redis"):
        client = redis.Redis.from_url(url)
        keys = [*client.scan_iter(match=f"{queue}*"), *client.scan_iter(match=f"*binding*{queue}*")]
        if keys:
            client.delete(*keys)
        client.close()
        return
    with Connection(url) as conn:
        channel = conn.channel()
        channel.queue_delete(queue)
        channel.close()


PARAMS = [
    pytest.param(case, transport, id=f"{transport}-{case.name}")
    for case in CASES
    for transport in case.transports
]


def test_there_are_at_least_20_cases():
    assert len(CASES) >= 20


@pytest.mark.parametrize(("case", "transport"), PARAMS)
def test_bad_input_is_refused_before_anything_is_sent(make_app, case, transport):
    ours = make_app(transport, case.conf, case.broker_url)
    url = ours.conf.broker_url if case.broker_url is None else None
    with pytest.raises(case.error) as info:
        case.build(ours, group).apply_async(**case.options)
    notes = "\n".join(getattr(info.value, "__notes__", []))
    if case.child is not None:
        position, task = case.child
        assert info.value.group_child == position, notes
        assert info.value.group_child_task == task
        assert f"child #{position}" in notes
        assert "no message of the group was sent" in notes
        if task is not None:
            assert repr(task) in notes
    if url is not None:
        assert queued(url, ours.queue) == 0

    if case.celery_sends_some is None:
        return
    # The same group through Celery's own group: same exception type, and
    # (for a bad child after good ones) the good ones already sent.
    theirs = make_app(transport, case.conf, case.broker_url)
    with pytest.raises(case.error):
        case.build(theirs, celery_group).apply_async(**case.options)
    if url is not None:
        sent = queued(url, theirs.queue)
        assert (sent > 0) == case.celery_sends_some, sent
