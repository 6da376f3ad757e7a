"""The encoder's standard headers are the ones Celery's ``as_task_v2``
writes, in its order: the Python side reads them from the encoder
(``_core.STANDARD_HEADERS``) to tell what a publish receiver added."""

from __future__ import annotations

from celery import Celery

from turbogroup import _core
from turbogroup.publish import signalled


def test_the_encoders_standard_headers_are_as_task_v2s_in_order():
    app = Celery("tg_standard_headers", set_as_current=False)
    message = app.amqp.as_task_v2("id-1", "t.add", args=(1, 2), kwargs={"k": 3})
    assert tuple(message.headers) == _core.STANDARD_HEADERS
    assert signalled.STANDARD_HEADERS is _core.STANDARD_HEADERS
