"""The bench plot: µs per task against N, log-log, one line per
(library, transport) for dispatch and, in a second panel, one per
(library, operation and backend) for collection. matplotlib is optional
(the ``bench`` extra)."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from typing import Any

from turbogroup.benchkit.timing import Timing

# (library, transport) -> the timings of each N, in increasing N
Series = Mapping[tuple[str, str], list[Timing]]


def matplotlib_available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def write_plot(dispatch: Series, path: str, rounds: int, collection: Series | None = None) -> None:
    """``collection`` is keyed (operation, library), as the report keeps it."""
    import matplotlib

    matplotlib.use("Agg")  # a file, never a window: this runs on servers and in CI
    import matplotlib.pyplot as plt

    panels = 2 if collection else 1
    fig, axes = plt.subplots(panels, 1, figsize=(8, 5 * panels), squeeze=False)
    _panel(
        axes[0][0],
        dispatch,
        rounds,
        f"Dispatch of a pre-built group, apply_async only — {os.cpu_count()} cores",
        "tasks in the group (N)",
    )
    if collection:
        swapped = {(library, op): timings for (op, library), timings in collection.items()}
        _panel(
            axes[1][0],
            swapped,
            rounds,
            "Collection of N stored results, restored group",
            "results in the group (N)",
        )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _panel(ax: Any, series: Series, rounds: int, title: str, xlabel: str) -> None:
    for (library, where), timings in series.items():
        points = [(t.n, t.best_us) for t in timings if t.ok]
        if not points:
            continue
        xs, ys = zip(*points)
        # Celery and its peers dashed, turbogroup solid: the eye finds ours.
        style = "-" if library == "turbogroup" else "--"
        ax.plot(xs, ys, style, marker="o", label=f"{library} ({where})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"µs per task (best of {rounds})")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    # Outside the axes: inside, it hides the fastest line at the largest N.
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
