"""Faults during a group dispatch on real RabbitMQ: a nack, a connection
the broker closes, a socket dropped mid-batch or between batches, a
channel error while frames are gathered. Each raises a ``PublishError``
naming exactly the ids not confirmed, or is retried without a duplicate,
and ``resume()`` sends exactly the unconfirmed messages again.

Each test uses its own queue (and exchange), deleted afterwards.
"""

from __future__ import annotations

from typing import Any

import amqp
import pytest

from tests.integration.amqp_env import (
    close_from_broker,
    drop_socket,
    hook_publishes,
    queued_ids,
    with_ids,
)
from turbogroup import group
from turbogroup.errors import PublishError

pytestmark = pytest.mark.amqp


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
