"""A pytest plugin that applies ``turbogroup.install()`` before any test
module is imported: ``python -m pytest -p turbogroup.pytest_plugin ...``.

It is how Celery's own unit tests are run against turbogroup (tests/compat),
and how a user can run their project's tests with turbogroup in place.
"""

from __future__ import annotations

import json
import os

import turbogroup

turbogroup.install()


def pytest_report_header() -> list[str]:
    import celery
    import celery.canvas

    bound = {
        "celery.canvas.group": celery.canvas.group,
        "celery.group": celery.group,
        "Signature.TYPES['group']": celery.canvas.Signature.TYPES["group"],
    }
    state = ", ".join(
        f"{where}={'turbogroup' if obj is turbogroup.group else 'celery'}"
        for where, obj in bound.items()
    )
    return [f"turbogroup {turbogroup.__version__} installed: {state}"]


def _count_calls() -> dict[str, int]:
    """With TURBOGROUP_COMPAT_REPORT set, count calls into turbogroup's own
    group methods, so a run can prove our code (not Celery's) was exercised."""
    counts: dict[str, int] = {}
    for name in ("apply_async", "apply", "_freeze_group_tasks", "_prepared", "_freeze_gid"):
        original = getattr(turbogroup.group, name)
        counts[name] = 0

        def wrapper(*args: object, __name: str = name, __orig: object = original, **kw: object):
            counts[__name] += 1
            return __orig(*args, **kw)  # type: ignore[operator]

        setattr(turbogroup.group, name, wrapper)
    return counts


_REPORT = os.environ.get("TURBOGROUP_COMPAT_REPORT")
_COUNTS = _count_calls() if _REPORT else {}


def pytest_sessionfinish() -> None:
    if _REPORT:
        import celery.canvas

        with open(_REPORT, "w") as f:
            json.dump({"installed": celery.canvas.group is turbogroup.group, "calls": _COUNTS}, f)
