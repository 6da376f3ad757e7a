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


def test_extend_takes_any_iterable_and_refuses_non_strings_whole():
    kept = _core.TaskIds()
    kept.extend(iter(["a", "b"]))
    kept.extend(_core.TaskIds())
    with pytest.raises(TypeError):
        kept.extend(["c", 1])
    assert kept.tolist() == ["a", "b"]  # nothing of the refused batch


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
