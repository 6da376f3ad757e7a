"""``collected_reports``: every dispatch's report reaches each block open
at the time, from any thread, and only those."""

from __future__ import annotations

import logging
import threading

from turbogroup.publish.report import DispatchReport, collected_reports


def test_each_open_block_gets_the_reports_made_while_it_is_open():
    first, second, third = (
        DispatchReport("redis", 1),
        DispatchReport("redis", 2),
        DispatchReport("redis", 3),
    )
    first.emit()  # before any block: collected by none
    with collected_reports() as outer:
        with collected_reports() as inner, collected_reports() as innermost:
            second.emit()
        # the three lists were equal when the inner blocks closed: each
        # block leaves by identity, not by value
        third.emit()
    DispatchReport("redis", 4).emit()
    assert outer == [second, third]
    assert inner == innermost == [second]


def test_reports_of_other_threads_are_collected():
    with collected_reports() as reports:
        made = [DispatchReport("redis", n) for n in range(8)]
        threads = [threading.Thread(target=report.emit) for report in made]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(r.by_engine for r in reports) == list(range(8))


def test_collected_reports_are_still_logged_at_debug(caplog):
    caplog.set_level(logging.DEBUG, logger="turbogroup.dispatch")
    report = DispatchReport("amqp", by_engine=5, by_celery=1)
    with collected_reports() as reports:
        report.emit()
    assert reports == [report]
    [record] = [r for r in caplog.records if hasattr(r, "turbogroup_dispatch")]
    assert record.turbogroup_dispatch is report
    assert "6 messages on amqp: 5 built by turbogroup's encoder, 1 by Celery's" in record.message
