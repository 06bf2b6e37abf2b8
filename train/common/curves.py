"""The one loss-curve picture of the trainers: panels side by side, each with one or more curves per step."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.core.files import atomic_write_bytes


@dataclass
class Panel:
    """One plot: ``curves`` maps a label to its value per step (a list, step 1 first, or a dict step -> value for
    a curve measured every so many steps). ``smooth`` adds a running mean
    (a fiftieth of the steps) to a single curve; the y axis is logarithmic when every value is positive and
    ``log_scale`` allows it; ``empty`` is written in a panel without any value."""

    title: str
    curves: dict[str, list[float] | dict[int, float]] = field(default_factory=dict)
    ylabel: str = "loss"
    smooth: bool = False
    log_scale: bool = True
    empty: str = "no steps"


def plot_panels(path: str | Path, panels: list[Panel], *, legend_max: int = 12, title: str = "") -> None:
    """Draw ``panels`` in one row into the PNG ``path``, under ``title`` when given (a figure of several panels
    says what they are together)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width = 6 if len(panels) == 1 else 4 * len(panels)
    fig, axes = plt.subplots(1, len(panels), figsize=(width, 3.5), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        _draw(ax, panel, legend_max)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    atomic_write_bytes(path, lambda buffer: fig.savefig(buffer, dpi=100, format="png"))
    plt.close(fig)


def _draw(ax, panel: Panel, legend_max: int) -> None:
    from matplotlib.ticker import MaxNLocator

    values = [v for curve in panel.curves.values() for v in (curve.values() if isinstance(curve, dict) else curve)]
    for label, curve in panel.curves.items():
        if isinstance(curve, dict):
            ax.plot(list(curve), list(curve.values()), marker=".", lw=0.9, label=label)
            continue
        steps = np.arange(1, len(curve) + 1)
        ax.plot(steps, curve, lw=0.6 if panel.smooth else 0.9, alpha=0.5 if panel.smooth else 1.0, label=label)
        window = max(1, len(curve) // 50)
        if panel.smooth and window > 1:
            mean = np.convolve(curve, np.ones(window) / window, mode="valid")
            ax.plot(steps[window - 1:], mean, lw=1.2, label=f"mean of {window}")
    if not values:
        ax.text(0.5, 0.5, panel.empty, ha="center", va="center", transform=ax.transAxes)
    elif 1 < len(panel.curves) + panel.smooth and len(panel.curves) <= legend_max:
        ax.legend(fontsize=7)
    if values and panel.log_scale and min(values) > 0:
        ax.set_yscale("log")
    ax.set(title=panel.title, xlabel="step", ylabel=panel.ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))        # steps are whole: no tick at 2.5
    ax.grid(alpha=0.3)
