"""install()/uninstall() rebind every place Celery looks group up."""

from __future__ import annotations

import importlib

import celery
import celery.canvas
from celery.canvas import Signature

import turbogroup
from turbogroup.install import TARGETS

ORIGINAL = celery.canvas.group


def bound() -> list[object]:
    objs = [getattr(importlib.import_module(m), a) for m, a in TARGETS]
    return [*objs, Signature.TYPES["group"]]


def test_install_rebinds_everywhere_and_uninstall_restores(app):
    assert not turbogroup.installed()
    turbogroup.install()
    try:
        turbogroup.install()  # idempotent
        assert all(obj is turbogroup.group for obj in bound())
        assert celery.group is turbogroup.group
        # Celery's own chord now wraps its header in ours.
        c = celery.chord([app.add.s(1, 1), app.add.s(2, 2)], app.tsum.s())
        c.freeze()
        assert type(c.tasks) is turbogroup.group
        assert type(Signature.from_dict(dict(celery.group(app.add.s(1, 1))))) is turbogroup.group
    finally:
        turbogroup.uninstall()
    turbogroup.uninstall()  # idempotent
    assert all(obj is ORIGINAL for obj in bound())
    assert not turbogroup.installed()


def test_turbogroup_group_is_a_celery_group():
    assert issubclass(turbogroup.group, ORIGINAL)
    assert issubclass(turbogroup.GroupResult, celery.result.GroupResult)
