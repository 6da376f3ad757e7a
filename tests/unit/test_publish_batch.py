"""The bulk publisher's bookkeeping: which ids a failed flush leaves
unconfirmed. kombu's batch is replaced by a fake here (a pure unit test);
tests/e2e publishes through the real one."""

from __future__ import annotations

import pytest
from celery import signals

from turbogroup.errors import PublishError
from turbogroup.publish.batch import Batch, bulk_publish_allowed


class FakeKombuBatch:
    def __init__(self, fail_on_flush: int | None = None) -> None:
        self.flushes = 0
        self.fail_on_flush = fail_on_flush

    def flush(self) -> None:
        self.flushes += 1
        if self.flushes == self.fail_on_flush:
            raise ConnectionError("broker went away")


def test_flushes_every_size_tasks():
    kb = FakeKombuBatch()
    batch = Batch(kb, size=3, producer=None)
    for i in range(7):
        batch.published(f"id{i}")
    assert kb.flushes == 2 and batch.confirmed == 6 and batch.pending == ["id6"]
    batch.flush()
    assert kb.flushes == 3 and batch.confirmed == 7 and batch.pending == []


def test_failed_flush_names_exactly_the_unconfirmed_ids():
    batch = Batch(FakeKombuBatch(fail_on_flush=2), size=2, producer=None)
    batch.published("a")
    batch.published("b")
    batch.published("c")
    with pytest.raises(PublishError) as info:
        batch.published("d")
    assert info.value.unconfirmed_ids == ["c", "d"]
    assert info.value.confirmed == 2
    assert "not confirmed sent" in str(info.value)
    assert isinstance(info.value.__cause__, ConnectionError)


def test_publish_signal_receivers_turn_batching_off(app):
    assert bulk_publish_allowed(app)

    def receiver(**kwargs):
        pass

    signals.after_task_publish.connect(receiver)
    try:
        assert not bulk_publish_allowed(app)
    finally:
        signals.after_task_publish.disconnect(receiver)
    assert bulk_publish_allowed(app)
