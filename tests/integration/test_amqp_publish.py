"""Group dispatch on real RabbitMQ: every message confirmed before
``apply_async`` returns, byte-for-byte what Celery's group publishes, and
on a nack or a lost connection a ``PublishError`` naming the missing ids.

Each test uses its own queue (and exchange), deleted afterwards.
"""

from __future__ import annotations

import enum
import json
import re
import shutil
import socket
import subprocess
import uuid
from collections.abc import Callable
from typing import Any

import amqp
import pytest
from celery import Celery
from celery.canvas import group as celery_group
from kombu import Connection, Exchange, Queue

from turbogroup import group
from turbogroup.errors import PublishError
from turbogroup.publish import bulk_publisher
from turbogroup.publish.amqp import DEFAULT_BATCH_SIZE, ConfirmBatch

pytestmark = pytest.mark.amqp

# Sizes below assume batches of 1000 tasks; the tests pick indexes around
# the batch boundary.
assert DEFAULT_BATCH_SIZE == 1000


@pytest.fixture
def make_app(amqp_url, unique_name):
    created: list[tuple[Celery, list[str]]] = []

    def make(queue_arguments: dict[str, Any] | None = None, extra_queue: str | None = None):
        name = f"{unique_name}-{len(created)}"
        queues = [Queue(name, Exchange(name), routing_key=name, queue_arguments=queue_arguments)]
        if extra_queue:
            queues.append(Queue(f"{name}-{extra_queue}", Exchange(f"{name}-{extra_queue}")))
        app = Celery("turbogroup-amqp-test", set_as_current=False)
        app.conf.update(
            broker_url=amqp_url,
            task_default_queue=name,
            task_queues=queues,
            broker_connection_retry_on_startup=False,
        )

        @app.task(shared=False, name="t.add")
        def add(*args, **kwargs):
            # never run here; *args so partial args pass the signature check
            return args, kwargs

        @app.task(shared=False, name="t.other")
        def other(*args):
            return args

        @app.task(shared=False, name="t.on_error")
        def on_error(request, exc, traceback):
            return None

        if extra_queue:
            app.conf.task_routes = {"t.other": {"queue": f"{name}-{extra_queue}"}}
        app.add, app.other, app.on_error = add, other, on_error
        app.queue_names = [q.name for q in queues]
        created.append((app, app.queue_names))
        return app

    yield make
    with Connection(amqp_url) as conn:
        channel = conn.channel()
        for app, names in created:
            for name in names:
                channel.queue_delete(name)
                channel.exchange_delete(name)
            app.close()
        channel.close()


def message_count(app: Celery, queue: str) -> int:
    with app.connection_for_write() as conn:
        channel = conn.channel()
        try:
            return channel.queue_declare(queue, passive=True).message_count
        finally:
            channel.close()


def take_messages(app: Celery, queue: str) -> list[dict[str, Any]]:
    """Every message in ``queue`` (removed), decoded."""
    messages = []
    with app.connection_for_write() as conn:
        channel = conn.channel()
        while (msg := channel.basic_get(queue, no_ack=True)) is not None:
            properties = dict(msg.properties)
            headers = properties.pop("application_headers", {})
            info = msg.delivery_info
            messages.append(
                {
                    "exchange": info["exchange"],
                    "routing_key": info["routing_key"],
                    "headers": headers,
                    "properties": properties,
                    "body": json.loads(msg.body),
                }
            )
        channel.close()
    return messages


def queued_ids(app: Celery, queue: str) -> list[str]:
    return [m["headers"]["id"] for m in take_messages(app, queue)]


def with_ids(app: Celery, n: int) -> tuple[list[Any], list[str]]:
    # Explicit ids (kept by freeze) so the test knows the id of every child,
    # including the ones after a failure that never got a result.
    ids = [f"task-{i:05d}-{uuid.uuid4().hex[:8]}" for i in range(n)]
    return [app.add.s(i, i).set(task_id=ids[i]) for i in range(n)], ids


def hook_publishes(monkeypatch, at: int, action: Callable[[Any], None]) -> list[str]:
    """Run ``action(channel)`` just before the ``at``-th (0-based) frame
    write of a ``basic.publish``; returns the task ids in write order."""
    original = amqp.Channel._basic_publish
    seen: list[str] = []

    def hooked(self, msg, *args, **kwargs):
        seen.append(msg.properties["correlation_id"])
        if len(seen) == at + 1:
            action(self)
        return original(self, msg, *args, **kwargs)

    monkeypatch.setattr(amqp.Channel, "_basic_publish", hooked)
    return seen


# Found off PATH too: the wheel runs use a PATH without /usr/sbin, where a
# missing rabbitmqctl raised FileNotFoundError in place of the fault.
RABBITMQCTL = shutil.which("rabbitmqctl") or shutil.which(
    "rabbitmqctl", path="/usr/sbin:/usr/lib/rabbitmq/bin"
)


def close_from_broker(channel: Any) -> None:
    """Have RabbitMQ itself close this connection (and only this one)."""
    port = channel.connection.sock.getsockname()[1]
    rows = subprocess.run(
        [RABBITMQCTL, "-q", "--no-table-headers", "list_connections", "pid", "name"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    (pid,) = [r.split("\t")[0] for r in rows if f"\t127.0.0.1:{port} ->" in r]
    subprocess.run(
        [RABBITMQCTL, "-q", "close_connection", pid, "turbogroup test"],
        capture_output=True,
        check=True,
    )


def drop_socket(channel: Any) -> None:
    channel.connection.sock.shutdown(socket.SHUT_RDWR)


UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def without_generated_ids(messages: list[dict[str, Any]]) -> list[Any]:
    """Each generated uuid replaced by its order of first appearance, so two
    dispatches of the same canvas compare equal iff they have the same
    structure (the same id in the same places)."""
    seen: dict[str, str] = {}

    def rename(match: re.Match[str]) -> str:
        return seen.setdefault(match.group(0), f"<id{len(seen)}>")

    return json.loads(UUID.sub(rename, json.dumps(messages)))


def test_10k_group_is_all_queued_when_apply_async_returns(make_app):
    app = make_app()
    with app.connection_for_write() as conn:
        assert conn.transport.driver_type == "amqp"
    res = group(app.add.s(i, i) for i in range(10_000)).apply_async()
    # passive declare right after the call: no waiting, no polling
    assert message_count(app, app.queue_names[0]) == 10_000
    assert len(res) == 10_000
    assert queued_ids(app, app.queue_names[0]) == [r.id for r in res]


def test_messages_are_identical_to_what_celery_group_publishes(make_app):
    app = make_app(extra_queue="routed")
    add, other, on_error = app.add, app.other, app.on_error

    def canvas(cls: type) -> Any:
        g = cls(
            add.s(1, 2),
            add.s(3, y=4).set(priority=5),
            add.si(5, 6),
            add.s(7) | add.s(9),
            cls(add.s(10), add.s(11)),
            other.s("routed to its own queue"),
            add.s("x" * 3000, "tab\there"),
            add.s({"nested": [1, [2, [3, [4]]]]}),
        )
        g.link_error(on_error.s())
        return g

    def dispatch(cls: type) -> tuple[list[dict[str, Any]], Any]:
        res = canvas(cls).apply_async((100,), headers={"custom": "yes"}, priority=3)
        messages = take_messages(app, app.queue_names[0]) + take_messages(app, app.queue_names[1])
        # Celery's chain.run drops the producer it is given, so the chain's
        # message travels on another pooled connection (with Celery's group
        # too) and may overtake the others: compare in a fixed order.
        return sorted(messages, key=lambda m: (m["routing_key"], m["headers"]["argsrepr"])), res

    # Ours first, on a fresh app: the routed queue does not exist until the
    # publish declares it (kombu then caches the declaration per connection).
    ours, our_res = dispatch(group)
    theirs, _ = dispatch(celery_group)
    assert len(ours) == len(theirs) == 9
    assert without_generated_ids(ours) == without_generated_ids(theirs)
    # and the ids are the results' own (the chain's result is its last task,
    # which travels in the first one's message)
    assert {m["headers"]["id"] for m in ours} > {r.id for i, r in enumerate(our_res) if i != 3}


class Level(enum.IntEnum):
    HIGH = 1


def test_plain_children_are_identical_to_what_celery_group_publishes(make_app, dispatch_reports):
    """Plain signatures take the AMQP fast path (children alike the first of
    their kind are built from its message): the same messages as Celery's."""
    app = make_app(extra_queue="routed")
    add, other = app.add, app.other

    def children() -> list[Any]:
        return [
            *(add.s(i, i) for i in range(1500)),
            *(add.s(i, y=i).set(priority=4) for i in range(5)),
            *(add.si("x" * 3000, i) for i in range(3)),
            *(other.s(f"routed {i}") for i in range(3)),
            add.s(Level.HIGH, "an alike child the encoder leaves to Celery"),
            *(add.s(i).set(countdown=5) for i in range(2)),
        ]

    def dispatch(cls: type) -> tuple[list[Any], Any]:
        res = cls(children()).apply_async((100,), headers={"custom": "yes"}, priority=3)
        messages = take_messages(app, app.queue_names[0]) + take_messages(app, app.queue_names[1])
        for m in messages:  # countdown: eta differs by when each ran
            m["headers"]["eta"] = m["headers"]["eta"] and "<eta>"
        key = lambda m: (m["routing_key"], m["headers"]["argsrepr"])  # noqa: E731
        return without_generated_ids(sorted(messages, key=key)), res

    ours, our_res = dispatch(group)
    assert type(our_res._results).__name__ == "LazyResults", "the plain path was not taken"
    # Celery's publish builds the first child of each of the four kinds, the
    # two with a countdown (each has its own clock) and the Level child the
    # encoder passes on; every other child is built from its kind's message.
    (report,) = dispatch_reports()
    assert (report.by_engine, report.by_celery) == (1507, 7)
    assert report.fallbacks == {"values of type Level are encoded by Celery": 1}
    theirs, _ = dispatch(celery_group)
    assert len(ours) == len(theirs) == 1514
    assert ours == theirs


def test_a_child_the_encoder_passes_on_keeps_its_place_in_the_queue(make_app, dispatch_reports):
    app = make_app()
    add = app.add

    def children() -> list[Any]:
        return [add.s(1, 1), add.s(2, 2), add.s(Level.HIGH, 3), add.s(4, 4), add.s(5, 5)]

    def order(cls: type) -> list[Any]:
        cls(children()).apply_async()
        return [m["body"][0] for m in take_messages(app, app.queue_names[0])]

    ours = order(group)
    (report,) = dispatch_reports()
    assert report.fallbacks == {"values of type Level are encoded by Celery": 1}
    assert ours == order(celery_group) == [[1, 1], [2, 2], [1, 3], [4, 4], [5, 5]]


def test_dispatch_progress_counts_confirmed_batches(make_app):
    app = make_app()
    seen = []
    group(app.add.s(i, i) for i in range(2500)).apply_async(
        on_progress=lambda done, total: seen.append((done, total))
    )
    # Reported as acks are read (batches in flight: not per batch), rising,
    # and the whole group once every message is confirmed.
    assert seen[-1] == (2500, 2500)
    assert all(total == 2500 for _, total in seen)
    assert [done for done, _ in seen] == sorted({done for done, _ in seen})
    assert message_count(app, app.queue_names[0]) == 2500


def test_nacked_messages_raise_publish_error_naming_exactly_the_missing_ids(make_app):
    # RabbitMQ nacks every publish past max-length with reject-publish.
    app = make_app({"x-max-length": 1500, "x-overflow": "reject-publish"})
    sigs, ids = with_ids(app, 2500)
    with pytest.raises(PublishError) as info:
        group(sigs).apply_async()
    err = info.value
    # Batch 2 (1000-1999) was published whole and its acks drained: 1000-1499
    # acked, 1500-1999 nacked; batch 3 was never published, so not confirmed.
    assert err.unconfirmed_ids == ids[1500:]
    assert err.confirmed == 1500
    assert queued_ids(app, app.queue_names[0]) == ids[:1500]


def test_connection_closed_by_broker_mid_batch_names_every_unconfirmed_id(make_app, monkeypatch):
    app = make_app()
    sigs, ids = with_ids(app, 2500)
    closed: list[bool] = []

    def close(channel: Any) -> None:
        close_from_broker(channel)
        closed.append(True)

    written = hook_publishes(monkeypatch, 1500, close)
    with pytest.raises(PublishError) as info:
        group(sigs).apply_async()
    assert closed, "the broker closed the connection"
    err = info.value
    queued = queued_ids(app, app.queue_names[0])
    # The fault happened where it was injected: RabbitMQ queued a prefix
    # of what was handed to py-amqp before it closed the connection
    # (rabbitmqctl takes a while; frames still gathered for one write,
    # publish/amqp_wire.py, never left) and nothing after.
    assert queued == ids[: len(queued)] and 1000 <= len(queued) <= 1500
    assert written[1500:] == ids[1500 : len(written)]
    # Acks come in order, and the broker may close the connection before it
    # has acked the last messages it queued (on Python 3.10 it regularly
    # left 24 of them unacked): those are reported unconfirmed, since
    # nothing confirmed them. The first batch was drained before the second
    # was written, so it is always confirmed.
    assert 1000 <= err.confirmed <= 1500
    assert err.unconfirmed_ids == ids[err.confirmed :]
    assert set(ids) - set(queued) <= set(err.unconfirmed_ids)


def test_socket_dropped_mid_batch_never_leaves_a_missing_id_unreported(make_app, monkeypatch):
    app = make_app()
    sigs, ids = with_ids(app, 2500)
    hook_publishes(monkeypatch, 1500, drop_socket)
    with pytest.raises(PublishError) as info:
        group(sigs).apply_async()
    err = info.value
    queued = queued_ids(app, app.queue_names[0])
    assert len(queued) == len(set(queued))
    # Acks still unread when the socket died leave their messages unconfirmed
    # though RabbitMQ may well have queued them: unconfirmed is then a
    # superset of what is missing, never smaller.
    assert err.unconfirmed_ids == ids[err.confirmed :]
    # With the default window batch 2 is written before batch 1's acks are
    # read, so how many were acked when the socket died depends on timing
    # (a busy machine once read 441): only what was written can be.
    assert err.confirmed <= 1500
    assert set(ids[: err.confirmed]) <= set(queued)
    assert set(ids) - set(queued) <= set(err.unconfirmed_ids)
    assert set(queued) <= set(ids[:1501])

    # the pooled connection is usable again for the next dispatch
    monkeypatch.undo()
    res = group(app.add.s(i, i) for i in range(50)).apply_async()
    assert queued_ids(app, app.queue_names[0]) == [r.id for r in res]


def test_connection_lost_between_batches_is_retried_without_duplicates(make_app, monkeypatch):
    app = make_app()
    app.conf.turbogroup_confirm_window = 1  # stop and wait for each batch's acks
    sigs, ids = with_ids(app, 2500)
    # Before the first write of batch 2 every earlier message is acked, so
    # the failed message alone is republished on a new connection.
    written = hook_publishes(monkeypatch, 1000, drop_socket)
    res = group(sigs).apply_async()
    assert [r.id for r in res] == ids
    assert written.count(ids[1000]) == 2
    assert queued_ids(app, app.queue_names[0]) == ids


def test_connection_lost_between_batches_with_retry_off_names_every_unsent_id(
    make_app, monkeypatch
):
    app = make_app()
    app.conf.turbogroup_confirm_window = 1
    sigs, ids = with_ids(app, 2500)
    hook_publishes(monkeypatch, 1000, drop_socket)
    with pytest.raises(PublishError) as info:
        group(sigs).apply_async(retry=False)
    assert info.value.unconfirmed_ids == ids[1000:]
    assert info.value.confirmed == 1000
    assert queued_ids(app, app.queue_names[0]) == ids[:1000]


def test_resume_sends_exactly_the_unconfirmed_messages_again(make_app, monkeypatch):
    app = make_app()
    sigs, ids = with_ids(app, 3500)
    written = hook_publishes(monkeypatch, 1500, drop_socket)
    with pytest.raises(PublishError) as info:
        group(sigs).apply_async(retry=False)
    # The drop is found by the first write to reach the socket: at once, or
    # a few messages later when the broker's acks lag and the next frames
    # are being gathered. Either way the dispatch stopped there.
    assert 1501 <= len(written) < len(ids), "the socket was never dropped"
    assert set(info.value.unconfirmed_ids) >= set(ids[len(written) :])
    monkeypatch.undo()
    error = info.value
    first = queued_ids(app, app.queue_names[0])
    error.resume()
    again = queued_ids(app, app.queue_names[0])
    # Every id queued; a confirmed one exactly once; a resent one at most
    # twice (its ack may have been lost with the connection).
    assert set(first) | set(again) == set(ids)
    assert set(again) == set(error.unconfirmed_ids)
    assert len(again) == len(error.unconfirmed_ids)
    confirmed = [i for i in ids if i not in set(error.unconfirmed_ids)]
    assert len(confirmed) == error.confirmed and set(confirmed) <= set(first)
    with pytest.raises(RuntimeError):
        error.resume()


def test_pooled_producer_channel_is_not_left_in_confirm_mode(make_app):
    app = make_app()
    queue = app.queue_names[0]
    with app.producer_or_acquire() as producer:
        pooled_channel = producer.channel
        amqp_conn = producer.connection.connection
        channels_before = set(amqp_conn.channels)
        used = []
        with bulk_publisher(app, producer, {}) as batch:
            assert isinstance(batch, ConfirmBatch)
            # the messages are built on the pooled producer's settings and
            # sent on the confirm channel
            used.append(batch._channel)
    assert used[0] is not pooled_channel

    group(app.add.s(i, i) for i in range(10)).apply_async()
    with app.producer_or_acquire() as producer:
        assert producer.channel is pooled_channel
        # the dedicated channels were closed
        assert set(amqp_conn.channels) == channels_before
        acks: list[int] = []
        producer.channel.events["basic_ack"].add(lambda tag, multiple: acks.append(tag))
        producer.publish({"plain": True}, routing_key=queue, exchange="")
        with pytest.raises(socket.timeout):
            producer.connection.drain_events(timeout=0.5)
        assert acks == []  # a channel in confirm mode would have been acked
    assert message_count(app, queue) == 11


def test_confirm_timeout_and_batch_size_come_from_the_app_config(make_app):
    from turbogroup.publish import bulk_publisher

    app = make_app()
    app.conf.update(turbogroup_confirm_timeout=5.0, turbogroup_batch_size=250)
    with app.producer_or_acquire() as producer:
        with bulk_publisher(app, producer, {}) as batch:
            assert batch.default_confirm_timeout == 5.0
            assert batch._size == 250
    seen = []
    group(app.add.s(i, i) for i in range(600)).apply_async(
        on_progress=lambda done, total: seen.append(done)
    )
    assert seen[-1] == 600 and message_count(app, app.queue_names[0]) == 600


def test_frames_of_a_batch_are_written_in_a_few_system_calls(make_app, monkeypatch):
    """py-amqp writes each message with its own sendall; the bulk
    publisher gathers a batch's frames (publish/amqp_wire.py). Counted
    where the gathered frames meet the socket: a fallback to one write
    per message (or no gathering at all) fails this test."""
    from turbogroup.publish import amqp_wire

    app = make_app()
    sigs, ids = with_ids(app, 3000)
    gatherings: list[amqp_wire.Gathering] = []
    original_init = amqp_wire.Gathering.__init__

    def tracked_init(self, transport, limit):
        original_init(self, transport, limit)
        gatherings.append(self)

    monkeypatch.setattr(amqp_wire.Gathering, "__init__", tracked_init)
    group(sigs).apply_async()
    assert queued_ids(app, app.queue_names[0]) == ids
    writes = sum(g.writes for g in gatherings)
    assert sum(g.bytes_written for g in gatherings) > 2990 * 400  # all but each batch's first
    assert 0 < writes < 3000 / 20, writes


def test_a_failure_while_frames_are_gathered_closes_the_channel_and_names_the_rest(
    make_app, monkeypatch
):
    """A channel error raised mid-batch, while the batch's frames are being
    gathered: the channel's close must go out at once (it waits for the
    broker's reply), and the frames gathered but never written are named
    unconfirmed with everything after them."""
    app = make_app()
    sigs, ids = with_ids(app, 2500)

    def fail(channel):
        raise amqp.exceptions.ChannelError("injected by the test")

    written = hook_publishes(monkeypatch, 1500, fail)
    with pytest.raises(PublishError) as info:
        group(sigs).apply_async()
    err = info.value
    assert len(written) == 1501  # the fault happened where it was injected
    queued = queued_ids(app, app.queue_names[0])
    # gathered frames after the last full write never left
    assert queued == ids[: len(queued)] and 1000 <= len(queued) < 1500
    assert 1000 <= err.confirmed <= len(queued)
    assert err.unconfirmed_ids == ids[err.confirmed :]
