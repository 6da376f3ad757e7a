"""Memory figures of the running process, for the leak tests.

RSS alone cannot tell a leak from allocator behaviour: CPython's small-object
allocator keeps a 1 MiB arena mapped while any block in it is alive, so a
burst of allocations that leaves a few long-lived objects scattered around
raises RSS once and then plateaus. The tests therefore also record what is
really still allocated: live pymalloc blocks (``sys.getallocatedblocks``,
every Python object up to 512 bytes), live gc-tracked objects, and the bytes
glibc's malloc has handed out and not had back (where Rust's allocations and
large Python objects live; ``mallinfo2``, glibc >= 2.33). They also
record how many arenas the small-object allocator keeps mapped, and the
most it ever had: RSS that grows with the arenas kept, up to that
high-water mark, is the allocator's, not live memory.

The leak tests run their loops in a fresh interpreter (``run_child``) so that
pytest's own allocations, and those of earlier tests, stay out of the figures.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
MIB = 1024 * 1024


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _mallinfo2() -> Any:
    try:
        fn = ctypes.CDLL(None).mallinfo2
    except (AttributeError, OSError):
        return None  # not glibc, or glibc < 2.33
    fn.restype = _MallInfo2
    fn.argtypes = []
    return fn


_MALLINFO2 = _mallinfo2()


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_SIZE


def malloc_in_use_bytes() -> int | None:
    """Bytes malloc has handed out and not had back (heap and mmapped)."""
    if _MALLINFO2 is None:
        return None
    info = _MALLINFO2()
    return info.uordblks + info.hblkhd


def pymalloc_arenas() -> tuple[int | None, int | None]:
    """CPython's small-object allocator: how many 1 MiB arenas it has
    mapped now, and the most it ever had (its high-water mark), from
    ``sys._debugmallocstats`` (which writes to the C-level stderr);
    (None, None) where it cannot tell."""
    stats = getattr(sys, "_debugmallocstats", None)
    if stats is None:
        return None, None
    sys.stderr.flush()
    with tempfile.TemporaryFile() as out:
        saved = os.dup(2)
        os.dup2(out.fileno(), 2)
        try:
            stats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        text = out.read().decode(errors="replace")
    figures = {}
    for line in text.splitlines():
        name, _, value = line.partition("=")
        figures[name.strip("# ").strip()] = value.strip().replace(",", "")
    current, peak = figures.get("arenas allocated current"), figures.get("arenas highwater mark")
    if current is None or peak is None:
        return None, None
    return int(current), int(peak)


def snapshot() -> dict[str, Any]:
    """Figures taken after a full collection, so only live memory counts."""
    # CPython's method cache keeps a reference to the last attribute name
    # looked up in each of its 4,096 slots; C code that looks a method up by
    # a fresh string each call (datetime's isoformat asks its tzinfo for
    # `utcoffset` so) fills it slowly over tens of thousands of calls.
    # Bounded, and not ours: emptied so it is not counted as growth.
    sys._clear_type_cache()
    gc.collect()
    figures = {
        "rss": rss_bytes(),
        "blocks": sys.getallocatedblocks(),
        "objects": len(gc.get_objects()),
        "malloc": malloc_in_use_bytes(),
    }
    # Read last: the probe itself allocates (a file, the report's text).
    figures["arenas"], figures["arenas_peak"] = pymalloc_arenas()
    return figures


def growth(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {
        key: None if before[key] is None or after[key] is None else after[key] - before[key]
        for key in before
    }


def run_child(module: str, config: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Runs ``python -m module <config as JSON>`` from the repository root and
    returns the JSON object it prints last on stdout."""
    done = subprocess.run(
        [sys.executable, "-m", module, json.dumps(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"{module} failed:\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout.strip().splitlines()[-1])
