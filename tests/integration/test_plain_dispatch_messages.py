"""What a plain dispatch (``turbogroup.plain``) leaves on the Redis queue:
its children's arguments, the broker's key prefix, the chord a header's
children carry, its queue's declaration, and nothing at all for a bad
child. Byte for byte comparisons with Celery are in
``test_group_messages_match_celery_plain_path.py``.
"""

from __future__ import annotations

import base64
import json

import pytest

from tests.integration.redis_queue import queued_ids
from turbogroup import group

pytestmark = pytest.mark.redis


def test_a_bad_alike_child_is_named_and_nothing_is_sent(redis_add_env):
    app, add, queue, broker = redis_add_env
    children = [add.s(i, i) for i in range(1200)]
    children[1100] = add.s(1, 2, 3)  # alike the others but for its arguments
    with pytest.raises(TypeError) as info:
        group(children).apply_async()
    assert info.value.group_child == 1100
    assert info.value.group_child_task == "tg_plain.add"
    assert broker.llen(queue) == 0


def test_partial_arguments_and_immutable_children(redis_add_env):
    app, add, queue, broker = redis_add_env
    result = group([add.s(1), add.si(2, 3), add.s(4)]).apply_async(args=(10,))
    ids = [r.id for r in result.results]
    raw = broker.lrange(queue, 0, -1)
    assert len(raw) == 3
    bodies = {}
    for m in raw:
        envelope = json.loads(m)
        bodies[envelope["headers"]["id"]] = json.loads(base64.b64decode(envelope["body"]))[0]
    assert [bodies[i] for i in ids] == [[10, 1], [2, 3], [10, 4]]


def test_the_brokers_global_keyprefix_applies(redis_add_env, redis_url):
    app, add, queue, broker = redis_add_env
    prefix = f"{queue}-prefixed:"
    app.conf.broker_transport_options = {"global_keyprefix": prefix}
    group(add.s(i, i) for i in range(1200)).apply_async()
    group(add.s(i, i).set(task_id=f"{queue}-{i}") for i in range(5)).apply_async()
    try:
        assert broker.llen(f"{prefix}{queue}") == 1205
        assert broker.llen(queue) == 0
    finally:
        broker.delete(f"{prefix}{queue}", *broker.keys(f"{prefix}*"))


def test_a_generator_chord_headers_children_carry_the_chord(redis_add_env):
    """chord.run freezes a generator header lazily: its children look
    unfrozen when the header is dispatched, but must carry the chord (the
    group's option) and the chord size must be set."""
    app, add, queue, broker = redis_add_env

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
    redis_add_env, monkeypatch, request, chord_class
):
    """chord.run freezes the header only to hand its results to the
    backend's apply_chord, which on Redis (wrapped by install()) reads none
    of them: no result is made for a header task, whichever chord class
    the user's code holds, and the messages still carry the frozen ids."""
    from celery.canvas import _chord as celery_chord
    from celery.result import AsyncResult

    from turbogroup.chord import chord as turbo_chord
    from turbogroup.install import install, uninstall

    app, add, queue, broker = redis_add_env
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


def test_a_queue_is_declared_once_then_found_in_kombus_cache(redis_add_env, monkeypatch):
    """The first dispatch to a queue declares it through kombu (its binding
    is written); later ones find it in the connection's declared-entities
    cache, as kombu's own maybe_declare would, without calling kombu."""
    from kombu import Producer

    app, add, queue, broker = redis_add_env
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
