"""``celery_guards.setting``: ``app.conf.get`` without Celery's ``KeyError``
per miss, giving what Celery's own read gives in every case."""

from __future__ import annotations

import pytest
from celery import Celery
from celery.app.utils import Settings

from turbogroup.celery_guards import setting

KEYS = [
    "task_always_eager",
    "task_publish_retry",
    "task_publish_retry_policy",
    "task_serializer",
    "task_default_queue",
    "task_default_routing_key",  # a Settings property
    "broker_url",  # a Settings property reading the environment
    "CELERY_ALWAYS_EAGER",  # an old name
    "turbogroup_fast_path",  # in no map
    "turbogroup_batch_size",
]


def _apps():
    new = Celery("tg_settings_new", set_as_current=False)
    new.conf.update(task_publish_retry=False, turbogroup_batch_size=7)
    old = Celery("tg_settings_old", set_as_current=False)
    old.config_from_object({"CELERY_ALWAYS_EAGER": True, "CELERY_TASK_SERIALIZER": "pickle"})
    return {"new names": new, "old names": old}


@pytest.mark.parametrize("style", ["new names", "old names"])
def test_each_read_is_celerys(style):
    app = _apps()[style]
    conf = app.conf
    assert type(conf) is Settings  # the fast read applies
    for key in KEYS:
        assert setting(conf, key, "default") == conf.get(key, "default"), key
    app.close()


def test_a_change_is_seen_by_the_next_read():
    app = _apps()["new names"]
    conf = app.conf
    assert setting(conf, "task_always_eager") is False
    conf.task_always_eager = True
    assert setting(conf, "task_always_eager") is True
    conf.update(turbogroup_fast_path=False)
    assert setting(conf, "turbogroup_fast_path", True) is False
    del conf["turbogroup_fast_path"]
    assert setting(conf, "turbogroup_fast_path", True) is True
    app.close()


def test_a_view_celery_reads_differently_is_read_by_celery():
    app = _apps()["new names"]
    prefixed = Settings({"x_task_serializer": "yaml"}, [app.conf.maps[-1]], prefix="x")
    assert setting(prefixed, "task_serializer") == prefixed.get("task_serializer") == "yaml"

    class Own(Settings):
        def get(self, key, default=None):
            return "own"

    own = Own({}, app.conf.maps[1:])
    assert setting(own, "task_serializer") == "own"
    app.close()
