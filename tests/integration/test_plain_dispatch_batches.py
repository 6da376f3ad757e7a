"""A plain dispatch builds every message first, then sends them in
batches (``turbogroup_batch_size``, ``turbogroup_confirm_window`` of them
in flight): progress, a failure's resume and the round trips to Redis go
by batch, and nothing run between batches may change what is sent.
"""

from __future__ import annotations

import base64
import json

import pytest

from turbogroup import group

pytestmark = pytest.mark.redis


def test_dispatch_progress_counts_messages_sent(redis_add_env):
    app, add, queue, broker = redis_add_env
    seen = []
    result = group(add.s(i, i) for i in range(2500)).apply_async(
        on_progress=lambda done, total: seen.append((done, total))
    )
    assert seen == [(1000, 2500), (2000, 2500), (2500, 2500)]
    assert broker.llen(queue) == 2500 and len(result) == 2500


def test_dispatch_progress_without_batches_reports_once_at_the_end(redis_add_env, capsys):
    from celery import signals

    app, add, queue, broker = redis_add_env
    seen = []

    def receiver(*args, **kwargs):
        pass

    signals.after_task_publish.connect(receiver)
    try:
        group(add.s(i, i) for i in range(30)).apply_async(
            on_progress=lambda done, total: seen.append((done, total)), progress=True
        )
    finally:
        signals.after_task_publish.disconnect(receiver)
    assert seen == [(30, 30)]
    assert "30" in capsys.readouterr().err  # the bar (tqdm's, or a plain line)


@pytest.mark.parametrize("window", [1, 8])
def test_resume_sends_the_unsent_batches_of_a_failed_dispatch(redis_add_env, monkeypatch, window):
    import redis as redis_py

    import turbogroup.publish.redis_wire as wire
    from turbogroup.errors import PublishError

    app, add, queue, broker = redis_add_env
    app.conf.turbogroup_confirm_window = window
    write = wire._write_transaction
    calls = []

    def failing_second_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise redis_py.ConnectionError("injected: the link dropped")
        return write(*args, **kwargs)

    monkeypatch.setattr(wire, "_write_transaction", failing_second_batch)
    with pytest.raises(PublishError) as info:
        group(add.s(i, i) for i in range(3500)).apply_async(retry=False)
    assert len(calls) == 2, "the fault was never injected"
    error = info.value
    # One step at a time, the first one's reply was read before the second
    # was written; pipelined, the link dropped before any reply was read,
    # so the first one is not confirmed, though it landed.
    confirmed = 1000 if window == 1 else 0
    assert error.confirmed == confirmed and len(error.unconfirmed_ids) == 3500 - confirmed
    monkeypatch.undo()
    error.resume()
    headers = [json.loads(m)["headers"] for m in broker.lrange(queue, 0, -1)]
    # Exactly once: the landed step's marker kept resume() from pushing it.
    assert len(headers) == 3500
    assert sorted(h["group_index"] for h in headers) == list(range(3500))
    assert len({h["group"] for h in headers}) == 1
    assert {h["id"] for h in headers} >= set(error.unconfirmed_ids)


def test_batch_size_comes_from_the_app_config(redis_add_env, monkeypatch, dispatch_reports):
    import turbogroup.publish.redis_wire as wire

    app, add, queue, broker = redis_add_env
    app.conf.turbogroup_batch_size = 500
    write, read = wire._write_transaction, wire._read_transaction
    events = []

    def counting_write(*args, **kwargs):
        events.append("write")
        return write(*args, **kwargs)

    def counting_read(*args, **kwargs):
        events.append("read")
        return read(*args, **kwargs)

    monkeypatch.setattr(wire, "_write_transaction", counting_write)
    monkeypatch.setattr(wire, "_read_transaction", counting_read)
    group(add.s(i, i) for i in range(2250)).apply_async()
    # 500, 500, 500, 500, 250: one transaction each, all written before the
    # first reply is read (the default window is wider than five).
    assert events == ["write"] * 5 + ["read"] * 5
    assert broker.llen(queue) == 2250
    (report,) = dispatch_reports()
    assert report.by_engine == 2250
    app.conf.turbogroup_confirm_window = 2
    events.clear()
    group(add.s(i, i) for i in range(2250)).apply_async()
    assert events == ["write", "write", "read", "write", "read", "write", "read", "write"] + [
        "read",
        "read",
    ]
    assert broker.llen(queue) == 4500
    app.conf.turbogroup_batch_size = 0
    with pytest.raises(ValueError, match="turbogroup_batch_size"):
        group(add.s(i, i) for i in range(3)).apply_async()
    assert broker.llen(queue) == 4500


def test_a_publish_signal_receiver_keeps_the_encoder(redis_add_env, caplog, dispatch_reports):
    """On Redis a receiver keeps the dispatch batched and the messages built
    by the encoder, the receiver called for each with Celery's arguments
    (test_publish_signal_arguments.py); no warning."""
    from celery import signals

    app, add, queue, broker = redis_add_env
    calls = []

    def receiver(headers=None, **kwargs):
        calls.append(headers["id"])

    signals.before_task_publish.connect(receiver)
    try:
        results = [group(add.s(i, i) for i in range(5)).apply_async() for _ in range(3)]
    finally:
        signals.before_task_publish.disconnect(receiver)
    assert not [r for r in caplog.records if "receiver is connected" in r.getMessage()]
    assert calls == [r.id for res in results for r in res.results]
    assert [(r.by_engine, r.by_celery) for r in dispatch_reports()] == [(5, 0)] * 3
    assert broker.llen(queue) == 15


def test_a_small_group_is_one_write_and_one_round_trip(
    redis_add_env, monkeypatch, dispatch_reports
):
    """A small dispatch's transaction (MULTI, LPUSH, marker, EXEC) leaves in
    one socket write: each write wakes Redis, and four of them cost a
    group of one more than Celery's whole dispatch."""
    import redis.connection

    app, add, queue, broker = redis_add_env
    group(add.s(0, 0)).apply_async()  # connected, the queue declared
    broker.delete(queue)
    dispatch_reports()
    writes: list[list[bytes]] = []
    send = redis.connection.AbstractConnection.send_packed_command

    def recording(self, command, check_health=True):
        writes.append([command] if isinstance(command, (bytes, str)) else list(command))
        return send(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", recording)
    group(add.s(i, i) for i in range(3)).apply_async()
    (_, report) = dispatch_reports()
    assert (report.by_engine, report.by_celery) == (3, 0)
    assert len(writes) == 1 and len(writes[0]) == 1
    (data,) = writes[0]
    assert data.startswith(b"*1\r\n$5\r\nMULTI") and b"LPUSH" in data and b"EXEC" in data
    assert broker.llen(queue) == 3


def test_kwargs_are_sent_as_they_were_when_the_group_was_applied(
    redis_add_env, dispatch_reports, monkeypatch
):
    # Celery publishes each child at once, with a copy of its kwargs; ours
    # are sent after every child is built, and a progress callback runs
    # between the steps (one in flight at a time here): what it changes
    # must not reach unsent messages.
    app, add, queue, broker = redis_add_env
    monkeypatch.setitem(app.conf, "turbogroup_confirm_window", 1)
    children = [add.s(i, y=i) if i % 2 else add.s(i, i) for i in range(2500)]

    def meddle(done, total):
        for child in children:
            child.kwargs["y"] = -1  # the later steps are not sent yet
            child.kwargs.setdefault("z", 0)

    group(children).apply_async(on_progress=meddle)
    (report,) = dispatch_reports()
    assert (report.by_engine, report.by_celery) == (2500, 0)
    bodies = sorted(
        (
            json.loads(m)["headers"]["group_index"],
            json.loads(base64.b64decode(json.loads(m)["body"])),
        )
        for m in broker.lrange(queue, 0, -1)
    )
    assert [body[:2] for _, body in bodies] == [
        [[i], {"y": i}] if i % 2 else [[i, i], {}] for i in range(2500)
    ]
