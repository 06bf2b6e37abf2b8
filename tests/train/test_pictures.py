"""What the pictures say: counted nouns, the fine-tune loss plot's lines, the heatmap's colour bar, the score
curve's legend beside the axes and whole-step ticks."""
from __future__ import annotations

import numpy as np

from pipeline.core.tables import counted
from train.evaluation.heatmap import colour_bar, error_heatmap
from train.finetuning.adapt import loss_lines


def test_counted_nouns():
    assert counted(1, "span") == "1 span" and counted(0, "span") == "0 spans" and counted(3, "video") == "3 videos"
    assert counted(2, "child", "children") == "2 children"


def test_the_standard_loss_is_one_line_and_soff_shows_its_parts():
    standard = [{"total": 0.5, "pred": 0.5}, {"total": 0.4, "pred": 0.4}]
    assert loss_lines({"scene": standard}) == {"L_total = L_p": [0.5, 0.4]}
    soff = [{"total": 0.9, "pred": 0.5, "seg": 0.2, "flow": 0.2}]
    assert list(loss_lines({"scene": soff})) == ["L_total", "L_p", "L_s", "L_o"]
    assert list(loss_lines({"01": standard, "02": standard})) == ["video 01", "video 02"]


def test_the_colour_bar_runs_from_cold_at_zero_to_hot_at_the_scale():
    bar = colour_bar(160, 0.02)
    assert bar.shape == (160, 70, 3) and bar.dtype == np.uint8
    hot, cold = bar[12, 10].astype(int), bar[147, 10].astype(int)    # the ramp's ends
    assert hot[0] > hot[2] and cold[2] > cold[0]                 # red at the top, blue at the bottom (RGB)
    frame = np.zeros((8, 8, 3), np.uint8)
    full = error_heatmap(frame, np.full((8, 8), 0.02), 0.02)[0, 0].astype(int)
    assert np.abs(full - 0.65 * hot).max() <= 2                  # the panel's full heat is the bar's top colour


def test_the_score_curve_keeps_its_legend_off_the_curve_and_steps_whole(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from train.common.curves import Panel, plot_panels
    from train.evaluation.plots import plot_calibrated_curve

    captured = {}
    original = plt.close

    def keep(fig=None):
        captured.setdefault("figs", []).append(fig)
        return original(fig)

    plt.close = keep
    try:
        times = np.arange(100) / 10
        plot_calibrated_curve(tmp_path / "curve.png", times, np.sin(times), threshold=0.9, spans=[(1.0, 2.0)],
                              title="t", xlabel="time (s)")
        plot_panels(tmp_path / "loss.png", [Panel("p", {"a": [3.0, 2.0, 1.0, 0.5, 0.4]})], title="whole")
    finally:
        plt.close = original
    curve_fig, loss_fig = captured["figs"]
    ax = curve_fig.axes[0]
    legend = ax.get_legend()
    labels = [t.get_text() for t in legend.get_texts()]
    assert "flagged (1 span)" in labels
    curve_fig.canvas.draw()
    box, axes_box = legend.get_window_extent(), ax.get_window_extent()
    assert box.x0 >= axes_box.x1 - 1                             # beside the axes, not over the curve
    loss_ax = loss_fig.axes[0]
    loss_fig.canvas.draw()
    ticks = [t for t in loss_ax.get_xticks() if loss_ax.get_xlim()[0] <= t <= loss_ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)
    assert loss_fig._suptitle.get_text() == "whole"
