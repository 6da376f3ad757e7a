"""``celery_guards.app_now``: where an app's ``now`` is Celery's own, the
time is read as ``datetime.now(app.timezone)``, which must give what
Celery's ``to_utc(datetime.now(utc)).astimezone(app.timezone)`` gives for
the same instant: the same wall time, offset and fold (DST transitions
included); anything else is the app's own ``now``."""

from __future__ import annotations

import datetime
from zoneinfo import ZoneInfo

import pytest
from celery import Celery
from celery.utils.time import to_utc

from turbogroup.celery_guards import app_now

UTC = datetime.timezone.utc
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]


def _instants():
    """Instants around each zone's 2026 DST transitions, and ordinary ones."""
    base = [datetime.datetime(2026, m, d, h, tzinfo=UTC) for m, d, h in [(1, 15, 12), (7, 1, 0)]]
    around = []
    for month, day in [(3, 8), (3, 29), (4, 5), (10, 4), (10, 25), (11, 1)]:
        start = datetime.datetime(2026, month, day, tzinfo=UTC) - datetime.timedelta(hours=6)
        around += [start + datetime.timedelta(minutes=15 * k) for k in range(24 * 4 * 2)]
    return base + around


@pytest.mark.parametrize("zone", ZONES)
def test_the_same_instant_reads_as_celery_reads_it(zone):
    tz = ZoneInfo(zone)
    for instant in _instants():
        celerys = to_utc(instant).astimezone(tz)
        # datetime.now(tz) is tz.fromutc of the UTC time, as astimezone is
        ours = tz.fromutc(instant.replace(tzinfo=tz))
        assert (ours.isoformat(), ours.fold, ours.tzinfo) == (
            celerys.isoformat(),
            celerys.fold,
            celerys.tzinfo,
        ), instant


@pytest.mark.parametrize(
    ("zone", "enable_utc"), [(None, True), ("Europe/Berlin", True), ("America/New_York", False)]
)
def test_celerys_own_now_is_read_in_the_apps_timezone(zone, enable_utc):
    app = Celery("tg_clock", set_as_current=False)
    app.conf.update(timezone=zone, enable_utc=enable_utc)
    try:
        now = app_now(app)
        assert now is not app.now  # not Celery's method: the quicker read
        before, ours, after = app.now(), now(), app.now()
        assert before <= ours <= after
        assert ours.tzinfo is app.timezone is before.tzinfo
        assert ours.utcoffset() == before.utcoffset() or before.utcoffset() != after.utcoffset()
    finally:
        app.close()


def test_an_apps_own_now_is_called_as_it_is():
    app = Celery("tg_clock", set_as_current=False)
    frozen = datetime.datetime(2031, 5, 6, tzinfo=UTC)
    app.now = lambda: frozen
    try:
        assert app_now(app)() is frozen
    finally:
        app.close()

    class OwnNow(Celery):
        def now(self):
            return frozen

    app = OwnNow("tg_clock", set_as_current=False)
    try:
        assert app_now(app)() is frozen
    finally:
        app.close()
