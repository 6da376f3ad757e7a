"""The dispatch plot: µs per task against N, log-log, one line per
(library, transport). matplotlib is optional (the ``bench`` extra)."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping

from turbogroup.benchkit.timing import Timing

# (library, transport) -> the timings of each N, in increasing N
Series = Mapping[tuple[str, str], list[Timing]]


def matplotlib_available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def write_plot(series: Series, path: str, rounds: int) -> None:
    import matplotlib

    matplotlib.use("Agg")  # a file, never a window: this runs on servers and in CI
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for (library, transport), timings in series.items():
        points = [(t.n, t.best_us) for t in timings if t.ok]
        if not points:
            continue
        xs, ys = zip(*points)
        # Celery and its peers dashed, turbogroup solid: the eye finds ours.
        style = "-" if library == "turbogroup" else "--"
        ax.plot(xs, ys, style, marker="o", label=f"{library} ({transport})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("tasks in the group (N)")
    ax.set_ylabel(f"µs per task (best of {rounds})")
    ax.set_title(f"Dispatch of a pre-built group, apply_async only — {os.cpu_count()} cores")
    ax.grid(True, which="both", alpha=0.3)
    # Outside the axes: inside, it hides the fastest line at the largest N.
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
