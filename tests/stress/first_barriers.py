"""Eight threads make their process's first barriers at the same moment,
with collections and thread switches as frequent as CPython allows.

    python -m tests.stress.first_barriers

This is the narrowest form of the thread-stress crash: pyo3 allocated a
barrier (tracked by the collector, contents still zero), then released the
GIL on the first use of a process-wide lock before writing the contents;
another thread's collection traversed the unwritten barrier and
dereferenced a null pointer. Before the fix, 20 of 20 runs died by SIGSEGV.
Only the first barriers of a process can meet that lock, so each run needs
a fresh process. Exit status 0 when every barrier made works.
"""

from __future__ import annotations

import faulthandler
import gc
import sys
import threading

from vine import promise

from turbogroup.barrier import barrier

THREADS = 8
PER_THREAD = 50


def main() -> int:
    faulthandler.enable()
    gc.set_threshold(1)
    sys.setswitchinterval(1e-6)
    start = threading.Barrier(THREADS)
    fired: list[int] = []

    def make(k: int) -> None:
        start.wait(timeout=30)
        for _ in range(PER_THREAD):
            members = [promise(), promise()]
            b = barrier(members, callback=lambda: fired.append(k))
            for m in members:
                m()
            if not b.ready:
                fired.append(-1)
            gc.collect(0)

    threads = [threading.Thread(target=make, args=(k,)) for k in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ok = sorted(fired) == sorted(k for k in range(THREADS) for _ in range(PER_THREAD))
    print("ok" if ok else f"fired {len(fired)} of {THREADS * PER_THREAD}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
