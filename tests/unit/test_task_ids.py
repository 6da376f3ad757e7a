"""``_core.TaskIds``: a group's ids kept compactly give back exactly what
was added, in order, whatever string a user chose as a task id."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

from turbogroup import _core
from turbogroup.ids import uuid as new_id


def test_ids_come_back_as_added_in_order():
    ids = [new_id() for _ in range(5)]
    own = ["my-task", "", str(uuid.uuid4()).upper(), "{" + ids[0] + "}", "é" * 18, "x" * 500]
    added = ids[:2] + own + ids[2:]
    kept = _core.TaskIds()
    for task_id in added[:4]:
        kept.append(task_id)
    kept.extend(added[4:])
    assert len(kept) == len(added)
    assert kept.tolist() == added
    assert list(kept) == added
    assert [kept[i] for i in range(len(added))] == added
    with pytest.raises(IndexError):
        kept[len(added)]


def test_ids_that_are_not_strings_come_back_as_the_same_objects():
    # Celery sends a task_id a user chose as it is: an int, a UUID
    own = uuid.uuid4()
    surrogate = "id-\udc80"  # a str UTF-8 cannot hold
    kept = _core.TaskIds()
    kept.append(5)
    kept.extend(iter([own, "a", surrogate]))
    kept.extend(_core.TaskIds())
    assert kept.tolist() == [5, own, "a", surrogate]
    assert kept[1] is own and kept[-1] is surrogate and kept[-4] == 5
    with pytest.raises(IndexError):
        kept[-5]


def test_a_failed_extend_adds_nothing():
    def ids():
        yield "a"
        raise RuntimeError("the iterable failed")

    kept = _core.TaskIds()
    with pytest.raises(RuntimeError):
        kept.extend(ids())
    assert len(kept) == 0


def test_a_million_ids_take_16_bytes_each():
    # in a subprocess: the RSS of this one depends on the tests before it
    code = """
import resource
from turbogroup import _core
from turbogroup.ids import uuid
kept = _core.TaskIds()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for _ in range(1_000_000):
    kept.append(uuid())
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
assert len(kept) == 1_000_000
print(grown)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    grown_kib = int(out.stdout.strip())
    # 16 MB of ids (Vec growth can double it briefly); a list of strings
    # would be ~90 MB
    assert grown_kib < 40 * 1024
