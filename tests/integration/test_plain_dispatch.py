"""A group of plain task signatures: dispatched by ``turbogroup.plain``,
its results kept as ids until touched (``turbogroup.result.LazyResults``).

What the broker receives is compared with Celery's in
``test_group_messages_match_celery.py``; here, what the caller gets back
must behave as Celery's ``GroupResult`` does.
"""

from __future__ import annotations

import base64
import json
import pickle
import threading

import pytest
from celery.result import AsyncResult
from celery.result import GroupResult as CeleryGroupResult

from turbogroup import group
from turbogroup.result import LazyResults

pytestmark = pytest.mark.redis


@pytest.fixture
def env(redis_add_env):
    return redis_add_env


def queued_ids(broker, queue):
    """The ids of the queued messages, in group order."""
    headers = [json.loads(m)["headers"] for m in broker.lrange(queue, 0, -1)]
    return [h["id"] for h in sorted(headers, key=lambda h: h["group_index"])]


def test_results_stay_ids_until_touched(env, dispatch_reports):
    app, add, queue, broker = env
    result = group(add.s(i, i) for i in range(1500)).apply_async()
    (report,) = dispatch_reports()
    assert (report.transport, report.by_engine, report.by_celery) == ("redis", 1500, 0)
    # all but the first child of each step of 1000 by the Rust loop
    assert report.looped == 1498
    assert isinstance(result._results, LazyResults)
    assert len(result) == 1500  # without making the results
    assert isinstance(result._results, LazyResults)
    children = result.results
    assert isinstance(children, list) and result.results is children
    frozen = add.s(0, 0).freeze()  # what Celery's freeze makes of a child
    assert all(type(r) is type(frozen) for r in children)
    assert all(r.backend is frozen.backend and r.app is frozen.app for r in children)
    assert broker.llen(queue) == 1500
    assert result[3] is children[3] and result.children is children
    again = pickle.loads(pickle.dumps(result))
    assert again == result and [r.id for r in again.results] == [r.id for r in children]
    assert [r.id for r in children] == queued_ids(broker, queue)


def test_collected_results_fire_the_group_barrier(env):
    app, add, queue, broker = env
    result = group(add.s(i, i) for i in range(300)).apply_async()
    fired = []
    result.then(lambda r: fired.append(r))
    assert isinstance(result._results, LazyResults)
    for i, child_id in enumerate(queued_ids(broker, queue)):
        app.backend.store_result(child_id, 2 * i, "SUCCESS")
    assert not fired
    assert result.completed_count() == 300
    assert result.get(timeout=10) == [2 * i for i in range(300)]
    assert result.ready() and result.successful()
    assert len(fired) == 1 and fired[0].id == result.id  # a weak proxy, as Celery's
    # a single child, touched apart, is the same object the group holds
    assert result.results[5].get(timeout=10) == 10


def test_results_made_in_another_thread_have_the_dispatchers_backend(env):
    app, add, queue, broker = env
    result = group(add.s(i, i) for i in range(20)).apply_async()
    made = []
    thread = threading.Thread(target=lambda: made.extend(result.results))
    thread.start()
    thread.join(10)
    assert len(made) == 20
    # Celery makes them while dispatching: with the dispatching thread's
    # backend (app.backend is per thread)
    assert {id(r.backend) for r in made} == {id(app.backend)}


def test_an_apps_own_group_result_class_gets_a_list(env):
    app, add, queue, broker = env

    class MyGroupResult(CeleryGroupResult):
        pass

    app.GroupResult = MyGroupResult
    result = group(add.s(i, i) for i in range(10)).apply_async()
    assert type(result) is MyGroupResult
    assert isinstance(result.results, list) and len(result.results) == 10
    assert all(isinstance(r, AsyncResult) for r in result.results)


def test_a_bad_alike_child_is_named_and_nothing_is_sent(env):
    app, add, queue, broker = env
    children = [add.s(i, i) for i in range(1200)]
    children[1100] = add.s(1, 2, 3)  # alike the others but for its arguments
    with pytest.raises(TypeError) as info:
        group(children).apply_async()
    assert info.value.group_child == 1100
    assert info.value.group_child_task == "tg_plain.add"
    assert broker.llen(queue) == 0


def test_partial_arguments_and_immutable_children(env):
    app, add, queue, broker = env
    result = group([add.s(1), add.si(2, 3), add.s(4)]).apply_async(args=(10,))
    ids = [r.id for r in result.results]
    raw = broker.lrange(queue, 0, -1)
    assert len(raw) == 3
    bodies = {}
    for m in raw:
        envelope = json.loads(m)
        bodies[envelope["headers"]["id"]] = json.loads(base64.b64decode(envelope["body"]))[0]
    assert [bodies[i] for i in ids] == [[10, 1], [2, 3], [10, 4]]


def test_the_brokers_global_keyprefix_applies(env, redis_url):
    app, add, queue, broker = env
    prefix = f"{queue}-prefixed:"
    app.conf.broker_transport_options = {"global_keyprefix": prefix}
    group(add.s(i, i) for i in range(1200)).apply_async()
    group(add.s(i, i).set(task_id=f"{queue}-{i}") for i in range(5)).apply_async()
    try:
        assert broker.llen(f"{prefix}{queue}") == 1205
        assert broker.llen(queue) == 0
    finally:
        broker.delete(f"{prefix}{queue}", *broker.keys(f"{prefix}*"))


def test_a_generator_chord_headers_children_carry_the_chord(env):
    """chord.run freezes a generator header lazily: its children look
    unfrozen when the header is dispatched, but must carry the chord (the
    group's option) and the chord size must be set."""
    app, add, queue, broker = env

    @app.task(name="tg_plain.tsum", shared=False)
    def tsum(values):
        return sum(values)

    result = (group(add.s(i, i) for i in range(3)) | tsum.s())()
    group_id = result.parent.id
    size_key = app.backend.get_key_for_group(group_id, ".s")
    assert int(app.backend.client.get(size_key)) == 3
    embeds = [
        json.loads(base64.b64decode(json.loads(m)["body"]))[2] for m in broker.lrange(queue, 0, -1)
    ]
    assert len(embeds) == 3
    assert all(e["chord"] and e["chord"]["task"] == "tg_plain.tsum" for e in embeds)


@pytest.mark.parametrize("chord_class", ["celery", "turbogroup"])
def test_a_chord_header_is_frozen_as_ids_for_the_redis_backend(
    env, monkeypatch, request, chord_class
):
    """chord.run freezes the header only to hand its results to the
    backend's apply_chord, which on Redis (wrapped by install()) reads none
    of them: no result is made for a header task, whichever chord class
    the user's code holds, and the messages still carry the frozen ids."""
    from celery.canvas import _chord as celery_chord
    from celery.result import AsyncResult

    from turbogroup.chord import chord as turbo_chord
    from turbogroup.install import install, uninstall

    app, add, queue, broker = env
    install()  # wraps the Redis backend's apply_chord
    request.addfinalizer(uninstall)

    @app.task(name="tg_plain.tsum", shared=False)
    def tsum(values):
        return sum(values)

    made = []
    init = AsyncResult.__init__

    def counting(self, *args, **kwargs):
        made.append(self)
        init(self, *args, **kwargs)

    monkeypatch.setattr(AsyncResult, "__init__", counting)
    make = celery_chord if chord_class == "celery" else turbo_chord
    result = make([add.s(i, i) for i in range(50)], tsum.s()).apply_async()
    # Besides the body's: the dispatch's own first child of its kind, which
    # goes through Celery's steps (before, the header's freeze made all 50).
    header_made = [r for r in made if r.id != result.id]
    assert len(header_made) <= 1, len(header_made)
    ids = queued_ids(broker, queue)
    assert len(ids) == 50 and len(set(ids)) == 50
    assert [r.id for r in result.parent.results] == ids
    size_key = app.backend.get_key_for_group(result.parent.id, ".s")
    assert int(app.backend.client.get(size_key)) == 50


def test_dispatch_progress_counts_messages_sent(env):
    app, add, queue, broker = env
    seen = []
    result = group(add.s(i, i) for i in range(2500)).apply_async(
        on_progress=lambda done, total: seen.append((done, total))
    )
    assert seen == [(1000, 2500), (2000, 2500), (2500, 2500)]
    assert broker.llen(queue) == 2500 and len(result) == 2500


def test_dispatch_progress_without_batches_reports_once_at_the_end(env, capsys):
    from celery import signals

    app, add, queue, broker = env
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


def store(app, task_id, value, status="SUCCESS"):
    app.backend.store_result(task_id, value, status)


def test_collection_reads_the_ids_without_making_results(env):
    app, add, queue, broker = env
    result = group(add.s(i, i) for i in range(1500)).apply_async()
    ids = queued_ids(broker, queue)
    for i, task_id in enumerate(ids[:700]):
        store(app, task_id, i)
    assert result.completed_count() == 700
    assert not result.ready() and result.waiting()
    assert isinstance(result._results, LazyResults)  # collected from the ids
    # made now: the ready ones cached and fulfilled, the others still waited on
    children = result.results
    for task_id in ids[:700]:
        app.backend.delete(app.backend.get_key_for_task(task_id))
    assert [r.result for r in children[:700]] == list(range(700))  # served from cache
    assert all(r.on_ready.ready for r in children[:700])
    assert not any(r.on_ready.ready for r in children[700:])
    fired = []
    children[3].then(lambda r: fired.append(r.id))  # a fulfilled promise calls at once
    assert fired == [ids[3]]
    group_fired = []
    result.then(lambda r: group_fired.append(r.id))
    for i, task_id in enumerate(ids[700:], 700):
        store(app, task_id, i)
    assert result.get(timeout=10) == list(range(1500))
    assert group_fired == [result.id]


def test_failures_from_the_ids_propagate_as_celerys(env):
    app, add, queue, broker = env
    result = group(add.s(i, i) for i in range(5)).apply_async()
    ids = queued_ids(broker, queue)
    for i, task_id in enumerate(ids):
        if i == 2:
            store(app, task_id, KeyError("boom"), "FAILURE")
        else:
            store(app, task_id, i)
    with pytest.raises(KeyError, match="boom"):
        result.get(timeout=10)
    values = result.get(timeout=10, propagate=False)
    assert isinstance(result._results, LazyResults)
    assert values[:2] == [0, 1] and isinstance(values[2], KeyError) and values[3:] == [3, 4]
    assert result.failed() and not result.successful() and result.completed_count() == 4


def test_a_subscription_elsewhere_makes_the_results_first(env):
    app, add, queue, broker = env
    result = group(add.s(i, i) for i in range(5)).apply_async()
    ids = queued_ids(broker, queue)
    other = app.AsyncResult(ids[0])
    other.then(lambda r: None)  # subscribes to the child's channel
    try:
        for i, task_id in enumerate(ids):
            store(app, task_id, i)
        assert result.get(timeout=10) == list(range(5))
        assert isinstance(result._results, list)  # Celery's path, results made
    finally:
        app.backend.remove_pending_result(other)


@pytest.mark.parametrize("window", [1, 8])
def test_resume_sends_the_unsent_batches_of_a_failed_dispatch(env, monkeypatch, window):
    import redis as redis_py

    import turbogroup.publish.redis_wire as wire
    from turbogroup.errors import PublishError

    app, add, queue, broker = env
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


def test_batch_size_comes_from_the_app_config(env, monkeypatch, dispatch_reports):
    import turbogroup.publish.redis_wire as wire

    app, add, queue, broker = env
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


def test_a_publish_signal_receiver_keeps_the_encoder(env, caplog, dispatch_reports):
    """On Redis a receiver keeps the dispatch batched and the messages built
    by the encoder, the receiver called for each with Celery's arguments
    (test_publish_signal_arguments.py); no warning."""
    from celery import signals

    app, add, queue, broker = env
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


def test_a_small_group_is_one_write_and_one_round_trip(env, monkeypatch, dispatch_reports):
    """A small dispatch's transaction (MULTI, LPUSH, marker, EXEC) leaves in
    one socket write: each write wakes Redis, and four of them cost a
    group of one more than Celery's whole dispatch."""
    import redis.connection

    app, add, queue, broker = env
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


def test_a_queue_is_declared_once_then_found_in_kombus_cache(env, monkeypatch):
    """The first dispatch to a queue declares it through kombu (its binding
    is written); later ones find it in the connection's declared-entities
    cache, as kombu's own maybe_declare would, without calling kombu."""
    from kombu import Producer

    app, add, queue, broker = env
    fresh = f"{queue}-fresh"
    calls: list[str] = []
    declare = Producer.maybe_declare

    def counting(self, entity, *args, **kwargs):
        calls.append(entity.name)
        return declare(self, entity, *args, **kwargs)

    monkeypatch.setattr(Producer, "maybe_declare", counting)
    group(add.s(i, i).set(queue=fresh) for i in range(3)).apply_async()
    assert calls == [fresh]
    assert broker.exists(f"_kombu.binding.{fresh}")
    group(add.s(i, i).set(queue=fresh) for i in range(3)).apply_async()
    assert calls == [fresh]  # from the cache: nothing asked of kombu
    assert broker.llen(fresh) == 6


def test_kwargs_are_sent_as_they_were_when_the_group_was_applied(
    env, dispatch_reports, monkeypatch
):
    # Celery publishes each child at once, with a copy of its kwargs; ours
    # are sent after every child is built, and a progress callback runs
    # between the steps (one in flight at a time here): what it changes
    # must not reach unsent messages.
    app, add, queue, broker = env
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
