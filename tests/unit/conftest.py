from __future__ import annotations

import pytest
from celery import Celery


@pytest.fixture
def app():
    """An in-memory app: no broker, no backend, nothing leaves the process."""
    app = Celery("turbogroup-unit", set_as_current=False)
    app.conf.update(broker_url="memory://", result_backend="cache+memory://")

    @app.task(shared=False)
    def add(x, y):
        return x + y

    @app.task(shared=False)
    def mul(x, y):
        return x * y

    @app.task(shared=False)
    def tsum(values):
        return sum(values)

    app.add, app.mul, app.tsum = add, mul, tsum
    yield app
    app.close()
