"""Awkward argument values through a real Celery worker (Redis broker and
backend): whatever Celery's own ``group`` gets back, turbogroup's must too.

turbogroup encodes most messages in Rust and decodes results in Rust, so
every value here crosses two reimplementations of kombu's JSON (and of
``saferepr`` for ``argsrepr``). The reference is what Celery returns, never
the input: kombu's JSON turns tuples into lists, coerces dict keys, and
rebuilds timezones as fixed offsets.

All values travel in one group per library (args, kwargs, group-level
partial args, and the reprs the worker saw), dispatched once per module;
each value is then checked as its own test.
"""

from __future__ import annotations

import collections
import datetime
import decimal
import enum
import math
import uuid
from typing import Any
from zoneinfo import ZoneInfo

import celery.contrib.testing.tasks  # noqa: F401 - registers the ping task start_worker uses
import pytest
from celery.canvas import group as celery_group
from celery.contrib.testing.worker import start_worker

from tests.conftest import REDIS_BACKEND_DB, REDIS_BROKER_DB
from tests.e2e.conftest import _delete_prefixed, make_redis_worker_app
from turbogroup import group as turbo_group

pytestmark = [pytest.mark.worker, pytest.mark.redis]
TIMEOUT = 60

UTC = datetime.timezone.utc
PARIS = ZoneInfo("Europe/Paris")


class Level(enum.IntEnum):
    HIGH = 1


# The pre-3.11 spelling users still have; its str() differs from StrEnum's.
class Speed(str, enum.Enum):
    FAST = "fast"


class Mode(enum.StrEnum):
    SLOW = "slow"


Point = collections.namedtuple("Point", "x y")

VALUES: dict[str, Any] = {
    # unicode
    "ascii": "hello",
    "empty-str": "",
    "non-bmp-emoji": "😀🐍𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "zwj-sequence": "👩\u200d👩\u200d👧\u200d👦",
    "combining": "e\u0301 Z\u0334\u0321\u0349 n\u0303",
    "rtl": "שלום עולם مرحبا",
    "bidi-override": "\u202eabc\u202c",
    "nul-inside": "a\x00b\x00",
    "control-chars": "\t\n\r\x01\x1f\x7f\x85",
    "json-specials": '"quote" \\back\\slash /slash\u2028\u2029',
    "lone-high-surrogate": "a\ud800b",
    "lone-low-surrogate": "\udfff",
    "reversed-surrogates": "\ude00\ud83d",
    # bytes
    "bytes-ascii": b"hello",
    "bytes-utf8": "naïve ☃ 😀".encode(),
    "bytes-empty": b"",
    "bytes-non-utf8": b"\xff\xfe\x00\x80abc",
    "bytes-latin1": "café".encode("latin-1"),
    # date and time
    "datetime-utc": datetime.datetime(2024, 3, 31, 1, 30, 5, 123456, tzinfo=UTC),
    "datetime-paris-summer": datetime.datetime(2024, 7, 14, 12, 0, tzinfo=PARIS),
    "datetime-paris-winter": datetime.datetime(2024, 1, 1, 0, 0, 0, 1, tzinfo=PARIS),
    "datetime-st-johns": datetime.datetime(2023, 11, 5, 1, 30, tzinfo=ZoneInfo("America/St_Johns")),
    "datetime-kathmandu": datetime.datetime(2000, 2, 29, tzinfo=ZoneInfo("Asia/Kathmandu")),
    "datetime-offset-seconds": datetime.datetime(
        1900, 1, 1, tzinfo=datetime.timezone(datetime.timedelta(hours=5, minutes=30, seconds=15))
    ),
    "datetime-naive": datetime.datetime(2024, 2, 29, 23, 59, 59, 999999),
    "datetime-naive-whole-second": datetime.datetime(1970, 1, 1),
    "datetime-min": datetime.datetime.min,
    "datetime-max": datetime.datetime.max,
    "date": datetime.date(2024, 2, 29),
    "date-min": datetime.date.min,
    "time": datetime.time(23, 59, 59, 999999),
    "time-midnight": datetime.time(0, 0),
    "time-utc": datetime.time(12, 30, tzinfo=UTC),
    # decimal
    "decimal": decimal.Decimal("0.1"),
    "decimal-long": decimal.Decimal(
        "3.14159265358979323846264338327950288419716939937510582097494459230781640628"
    ),
    "decimal-trailing-zeros": decimal.Decimal("1.000"),
    "decimal-negative-zero": decimal.Decimal("-0"),
    "decimal-huge-exponent": decimal.Decimal("1E+400"),
    "decimal-tiny": decimal.Decimal("-1.5E-400"),
    "decimal-nan": decimal.Decimal("NaN"),
    "decimal-infinity": decimal.Decimal("-Infinity"),
    # uuid
    "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "uuid-nil": uuid.UUID(int=0),
    "uuid-max": uuid.UUID(int=2**128 - 1),
    # containers
    "nested": {"a": [(1, 2), (3, [4, (5,)])], "b": {"c": ((),), "d": [{"e": (None,)}]}},
    "tuple": (1, "two", 3.0, (4,)),
    "empty-containers": [[], {}, ()],
    "deep": [[[[[["bottom"]]]]]],
    "mixed-in-containers": {
        "when": [datetime.datetime(2024, 1, 1, tzinfo=UTC), datetime.date(2024, 1, 2)],
        "ids": (uuid.UUID(int=1), decimal.Decimal("2.50")),
        "raw": [b"\x00\xff", b"ok"],
    },
    "non-str-keys": {1: "int", 2.5: "float", None: "none", False: "bool", "s": "str"},
    "looks-like-a-kombu-tag": {"__type__": "decimal", "__value__": "1.5"},
    # the encoder hands these to Celery (types it does not render itself)
    "int-enum": Level.HIGH,
    "str-enum": Speed.FAST,
    "strenum": Mode.SLOW,
    "namedtuple": Point(1, 2),
    "ordered-dict": collections.OrderedDict([("b", 1), ("a", 2)]),
    # integers
    "int-zero": 0,
    "int-i64-max": 2**63 - 1,
    "int-i64-max-plus-one": 2**63,
    "int-i64-min": -(2**63),
    "int-i64-min-minus-one": -(2**63) - 1,
    "int-u64-max": 2**64 - 1,
    "int-u64-max-plus-two": 2**64 + 1,
    "int-minus-2-100": -(2**100),
    "int-10-40": 10**40,
    # floats
    "float-0.1": 0.1,
    "float-1e308": 1e308,
    "float-max": 1.7976931348623157e308,
    "float-min-subnormal": 5e-324,
    "float-negative-zero": -0.0,
    "float-1e16": 1e16,
    "float-1e22": 1e22,
    "float-small": 2.5e-5,
    "float-digits": 123456789.12345679,
    "float-nan": math.nan,
    "float-inf": math.inf,
    "float-minus-inf": -math.inf,
    # bools and None
    "true": True,
    "false": False,
    "none": None,
    # long values: argsrepr is truncated past 1024 characters
    "long-ascii": "x" * 1025,
    "long-accented": "é" * 2000,
    "long-emoji": "😀" * 1100,
    "long-100k": "".join(chr(0x20 + i % 0x5F) for i in range(100_000)),
    "long-bytes": bytes(range(256)) * 8,
    "long-list": list(range(600)),
    "long-dict": {f"key{i}": [i, str(i)] for i in range(200)},
}
NAMES = list(VALUES)
# Keyword names a signature may carry: any str, not only identifiers.
ODD_KWARG_NAMES = {"ключ": 1, "😀": 2, "with space": 3, "": 4, "a\x00b": 5}


def same(a: Any, b: Any) -> bool:
    """Equal in type and value all the way down; floats, Decimals and
    datetimes by ``repr`` (``-0.0 == 0.0``, ``nan != nan``, and
    ``Decimal('1.0') == Decimal('1.00')``, but they are different values)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return repr(a) == repr(b)


def _canvas(group_cls: type, tasks: dict[str, Any]) -> Any:
    echo, kw_echo, reprs = tasks["echo"], tasks["kw_echo"], tasks["reprs"]
    values = [VALUES[name] for name in NAMES]
    return group_cls(
        [echo.s(v) for v in values]
        + [kw_echo.s(index=i, value=v) for i, v in enumerate(values)]
        + [reprs.s(v) for v in values]
        + [reprs.s(value=v) for v in values]
        + [kw_echo.s(**ODD_KWARG_NAMES)]
    )


def _partial_canvas(group_cls: type, tasks: dict[str, Any]) -> Any:
    echo_all = tasks["echo_all"]
    return group_cls(echo_all.s("child-0"), echo_all.si("immutable"), echo_all.s())


def _split(values: list[Any]) -> dict[str, Any]:
    n = len(NAMES)
    return {
        "args": values[:n],
        "kwargs": values[n : 2 * n],
        "reprs-args": values[2 * n : 3 * n],
        "reprs-kwargs": values[3 * n : 4 * n],
        "odd-kwarg-names": values[4 * n],
    }


@pytest.fixture(scope="module")
def echo_app(redis_url, redis_client):
    prefix = f"turbogroup-e2e-values-{uuid.uuid4().hex[:10]}:"
    app = make_redis_worker_app("turbogroup-e2e-values", redis_url, prefix, redis_client)

    @app.task(shared=False)
    def echo(x):
        return x

    @app.task(shared=False)
    def kw_echo(**kw):
        return kw

    @app.task(shared=False)
    def echo_all(*args, **kwargs):
        return [args, kwargs]

    # What the worker logs for the task: the message's saferepr headers,
    # which the Rust encoder writes itself.
    @app.task(shared=False, bind=True)
    def reprs(self, *args, **kwargs):
        return [self.request.argsrepr, self.request.kwargsrepr]

    app.tasks_by_name.update(echo=echo, kw_echo=kw_echo, echo_all=echo_all, reprs=reprs)
    try:
        with start_worker(app, pool="threads", concurrency=4, perform_ping_check=True):
            yield app
    finally:
        app.close()
        _delete_prefixed(f"{redis_url}/{REDIS_BROKER_DB}", prefix)
        _delete_prefixed(f"{redis_url}/{REDIS_BACKEND_DB}", prefix)


@pytest.fixture(scope="module")
def results(echo_app):
    """``{"turbogroup": ..., "celery": ...}``, each the split values of one
    group holding every case, plus the partial-args group's values."""
    tasks = echo_app.tasks_by_name
    partial_args = tuple(VALUES[name] for name in NAMES)
    partial_kwargs = {name: VALUES[name] for name in NAMES}
    out = {}
    for label, group_cls in (("turbogroup", turbo_group), ("celery", celery_group)):
        res = _canvas(group_cls, tasks).apply_async()
        partial = _partial_canvas(group_cls, tasks).apply_async(partial_args, partial_kwargs)
        out[label] = {
            **_split(res.get(timeout=TIMEOUT)),
            "partial": partial.get(timeout=TIMEOUT),
        }
    return out


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("how", ["args", "kwargs"])
def test_value_comes_back_as_celery_returns_it(results, how, name):
    i = NAMES.index(name)
    ours, theirs = results["turbogroup"][how][i], results["celery"][how][i]
    assert same(ours, theirs), f"{name}: turbogroup {ours!r} != celery {theirs!r}"


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("how", ["reprs-args", "reprs-kwargs"])
def test_worker_sees_the_argsrepr_celery_sends(results, how, name):
    i = NAMES.index(name)
    ours, theirs = results["turbogroup"][how][i], results["celery"][how][i]
    assert same(ours, theirs), f"{name}: turbogroup {ours!r} != celery {theirs!r}"


def test_long_values_are_truncated_in_argsrepr(results):
    # Guards the table: without a truncated repr the cases above prove less.
    argsrepr, _ = results["celery"]["reprs-args"][NAMES.index("long-100k")]
    assert len(argsrepr) < 1100 and argsrepr.endswith("...',)")


def test_keyword_names_that_are_not_identifiers(results):
    ours, theirs = results["turbogroup"]["odd-kwarg-names"], results["celery"]["odd-kwarg-names"]
    assert same(ours, theirs) and ours == ODD_KWARG_NAMES


def test_group_level_partial_args_and_kwargs(results):
    ours, theirs = results["turbogroup"]["partial"], results["celery"]["partial"]
    assert same(ours, theirs)
    # immutable child: no partial args or kwargs
    assert ours[1] == [["immutable"], {}]
    assert ours[0][0][-1] == "child-0" and len(ours[0][0]) == len(NAMES) + 1


def test_results_come_back_in_group_order(results):
    kwargs = results["turbogroup"]["kwargs"]
    assert [value["index"] for value in kwargs] == list(range(len(NAMES)))
