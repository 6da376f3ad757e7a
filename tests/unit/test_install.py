"""install()/uninstall() rebind every place Celery looks group and chord
up, and wrap the Redis backend's apply_chord."""

from __future__ import annotations

import importlib

import celery
import celery.canvas
from celery.backends.redis import RedisBackend
from celery.canvas import Signature

import turbogroup
from turbogroup.app_results import group_result_cls
from turbogroup.install import TARGETS

ORIGINAL = {"group": celery.canvas.group, "chord": celery.canvas.chord}
ORIGINAL_APPLY_CHORD = RedisBackend.__dict__["apply_chord"]


def bound(name: str) -> list[object]:
    objs = [getattr(importlib.import_module(m), a) for m, a, _ in TARGETS if a == name]
    return [*objs, Signature.TYPES[name]]


def test_install_rebinds_everywhere_and_uninstall_restores(app):
    assert not turbogroup.installed()
    turbogroup.install()
    try:
        turbogroup.install()  # idempotent
        assert all(obj is turbogroup.group for obj in bound("group"))
        assert all(obj is turbogroup.chord for obj in bound("chord"))
        assert celery.group is turbogroup.group and celery.chord is turbogroup.chord
        assert RedisBackend.apply_chord.__turbogroup_wraps__ is ORIGINAL_APPLY_CHORD
        # A chord of Celery's own class (imported before install) wraps
        # its header in ours too.
        c = ORIGINAL["chord"]([app.add.s(1, 1), app.add.s(2, 2)], app.tsum.s())
        c.freeze()
        assert type(c.tasks) is turbogroup.group
        assert type(Signature.from_dict(dict(celery.group(app.add.s(1, 1))))) is turbogroup.group
        chord_dict = dict(celery.chord([app.add.s(1, 1)], app.tsum.s()))
        assert type(Signature.from_dict(chord_dict)) is turbogroup.chord
    finally:
        turbogroup.uninstall()
    turbogroup.uninstall()  # idempotent
    for name, original in ORIGINAL.items():
        assert all(obj is original for obj in bound(name))
    assert RedisBackend.__dict__["apply_chord"] is ORIGINAL_APPLY_CHORD
    assert not turbogroup.installed()


def test_turbogroup_group_is_a_celery_group():
    assert issubclass(turbogroup.group, ORIGINAL["group"])
    assert issubclass(turbogroup.chord, ORIGINAL["chord"])
    assert turbogroup.chord.__name__ == ORIGINAL["chord"].__name__ == "_chord"
    assert issubclass(turbogroup.GroupResult, celery.result.GroupResult)


def unlock_group_result(app: celery.Celery) -> object:
    run = type(app.tasks["celery.chord_unlock"]).run
    names = run.__code__.co_varnames[: run.__code__.co_argcount]
    return run.__defaults__[names.index("GroupResult") - (len(names) - len(run.__defaults__))]


def test_chord_unlock_builds_our_group_result_while_installed() -> None:
    before = celery.Celery("finalized-before", set_as_current=False)
    before.finalize()
    own = celery.Celery("own-group-result", set_as_current=False)
    own.GroupResult = type("OwnGroupResult", (celery.result.GroupResult,), {})
    own.finalize()
    assert unlock_group_result(before) is before.GroupResult
    turbogroup.install()
    try:
        after = celery.Celery("finalized-after", set_as_current=False)
        after.finalize()
        for app in (before, after):
            cls = unlock_group_result(app)
            assert issubclass(cls, turbogroup.GroupResult) and cls.app is app
        assert unlock_group_result(own) is own.GroupResult  # the app's own: kept
    finally:
        turbogroup.uninstall()
    for app in (before, after):
        assert unlock_group_result(app) is app.GroupResult
    later = celery.Celery("finalized-after-uninstall", set_as_current=False)
    later.finalize()
    assert unlock_group_result(later) is later.GroupResult
    for app in (before, own, after, later):
        app.close()


def test_app_group_result_is_ours_while_installed() -> None:
    """Restored results and the ones an app builds from ids are made by
    ``app.GroupResult``: ours while installed, Celery's again after."""
    held = celery.Celery("held-before", set_as_current=False)
    celerys = held.GroupResult  # read before install: swapped, then given back
    fresh = celery.Celery("not-read-before", set_as_current=False)
    own = celery.Celery("own-group-result", set_as_current=False)
    own.GroupResult = type("OwnGroupResult", (celery.result.GroupResult,), {})
    turbogroup.install()
    try:
        made = celery.Celery("made-while-installed", set_as_current=False)
        for app in (held, fresh, made):
            cls = app.GroupResult
            assert issubclass(cls, turbogroup.GroupResult) and cls.app is app
            assert cls.__name__ == "GroupResult"
            # restoring goes through result_from_tuple -> app.GroupResult
            restored = celery.result.result_from_tuple(
                ((("gid", None), [(("t1", None), None)])), app
            )
            assert type(restored) is cls and restored.results[0].id == "t1"
            assert group_result_cls(app) is cls
        assert own.GroupResult.__name__ == "OwnGroupResult"  # the app's own: kept
    finally:
        turbogroup.uninstall()
    assert held.GroupResult is celerys
    for app in (fresh, made):
        assert app.GroupResult.__bases__ == (celery.result.GroupResult,)
    for app in (held, fresh, made, own):
        app.close()


def test_chord_unlock_of_an_app_finalized_while_installed_is_celerys_after() -> None:
    turbogroup.install()
    try:
        app = celery.Celery("finalized-while-installed", set_as_current=False)
        app.finalize()
        assert issubclass(unlock_group_result(app), turbogroup.GroupResult)
    finally:
        turbogroup.uninstall()
    assert unlock_group_result(app) is app.GroupResult
    assert app.GroupResult.__bases__ == (celery.result.GroupResult,)
    app.close()
