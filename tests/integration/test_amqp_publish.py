"""Group dispatch on real RabbitMQ: every message confirmed before
``apply_async`` returns, byte-for-byte what Celery's group publishes, and
on a nack or a lost connection a ``PublishError`` naming the missing ids.

Each test uses its own queue (and exchange), deleted afterwards.
"""

from __future__ import annotations

import enum
import json
import re
import socket
from typing import Any

import pytest
from celery.canvas import group as celery_group

from tests.integration.amqp_env import (
    message_count,
    queued_ids,
    take_messages,
    with_ids,
)
from turbogroup import group
from turbogroup.publish import bulk_publisher
from turbogroup.publish.amqp import DEFAULT_BATCH_SIZE, ConfirmBatch

pytestmark = pytest.mark.amqp

# Sizes below assume batches of 1000 tasks; the tests pick indexes around
# the batch boundary.
assert DEFAULT_BATCH_SIZE == 1000


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
