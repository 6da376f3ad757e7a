"""A pytest plugin that applies ``turbogroup.install()`` before any test
module is imported: ``python -m pytest -p turbogroup.pytest_plugin ...``.

It is how Celery's own unit tests are run against turbogroup (tests/compat),
and how a user can run their project's tests with turbogroup in place.
"""

from __future__ import annotations

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
