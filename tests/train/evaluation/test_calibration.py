"""The calibrated score (train.evaluation.calibration) against plain loops, and the streaming predictor against
the evaluation's own (the same PSNRs), lazily over a stream without end."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from helpers.models import tiny_unet
from pipeline.core.errors import RunError
from train.evaluation.calibration import Calibration, causal_mean, fit_calibration, spans
from train.evaluation.predict import predict_video
from train.evaluation.stream import stream_predictions


def naive_causal_mean(values, window):
    out = []
    for t, v in enumerate(values):
        recent = [x for x in values[max(0, t - window + 1):t + 1] if not np.isnan(x)]
        out.append(np.nan if np.isnan(v) or not recent else float(np.mean(recent)))
    return np.array(out)


@pytest.mark.parametrize("window", [1, 2, 5])
def test_causal_mean_matches_a_loop(window):
    values = np.random.default_rng(window).normal(size=40)
    values[[0, 1, 2, 3, 17]] = np.nan
    assert np.allclose(causal_mean(values, window), naive_causal_mean(values, window), equal_nan=True)


def test_threshold_gives_the_false_alarm_rate_on_the_calibration_frames():
    rng = np.random.default_rng(0)
    psnr = {f"v{i}": np.concatenate([[np.nan] * 4, rng.normal(32 + i, 1.5, 300)]) for i in range(3)}
    for rate in (0.01, 0.05, 0.2):
        c = fit_calibration(psnr, false_alarm_rate=rate, window=3)
        pooled = np.concatenate([c.scores(p) for p in psnr.values()])
        pooled = pooled[~np.isnan(pooled)]
        above = np.mean(pooled > c.threshold)
        assert above <= rate and above > rate - 5 / pooled.size
        assert c.frames == 900 and c.videos == ("v0", "v1", "v2")
        assert c.mean_psnr == pytest.approx(np.nanmean(np.concatenate(list(psnr.values()))))
    assert Calibration.from_json(c.to_json()) == c
    with pytest.raises(ValueError, match="false-alarm rate 1.0"):
        fit_calibration(psnr, false_alarm_rate=1.0, window=3)
    with pytest.raises(ValueError, match="1 calibration frame"):
        fit_calibration({"v": np.array([np.nan, 30.0])}, false_alarm_rate=0.01, window=3)


def test_spans_are_runs_of_flags_with_times_and_peaks():
    flags = np.array([0, 1, 1, 1, 0, 1, 0, 0, 1, 1, 1, 1], bool)
    scores = np.arange(12, dtype=float)
    found = spans(flags, scores, min_span=3, fps=4.0)
    assert [(s["start_frame"], s["end_frame"], s["peak_frame"]) for s in found] == [(1, 3, 3), (8, 11, 11)]
    assert found[0]["start_s"] == 0.25 and found[0]["end_s"] == 1.0 and found[1]["frames"] == 4
    assert len(spans(flags, scores, min_span=1)) == 3 and "start_s" not in spans(flags, scores)[0]
    # a dip of up to merge_gap frames does not cut a span: 1-3 and 5 join over the one-frame gap, 8-11 stays apart
    merged = spans(flags, scores, min_span=3, merge_gap=1)
    assert [(s["start_frame"], s["end_frame"], s["frames"]) for s in merged] == [(1, 5, 5), (8, 11, 4)]
    assert [(s["start_frame"], s["end_frame"]) for s in spans(flags, scores, merge_gap=2)] == [(1, 11)]


class ListSource:
    """The two methods predict_video needs, over frames in memory."""

    def __init__(self, frames):
        self.frames = frames

    def num_frames(self, video):
        return len(self.frames)

    def read(self, video, index):
        return self.frames[index]


@torch.inference_mode()
def test_streaming_gives_the_evaluations_psnrs_and_is_lazy():
    torch.manual_seed(0)
    model = tiny_unet().eval()
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (20, 28, 3), dtype=np.uint8) for _ in range(23)]
    expected = predict_video(model, ListSource(frames), "v", size=(32, 24), batch_size=3, device=torch.device("cpu"))
    streamed = list(stream_predictions(model, iter(frames), size=(32, 24), batch_size=5, device=torch.device("cpu")))
    assert [p.index for p in streamed] == list(range(4, 23))
    assert np.allclose([p.psnr for p in streamed], expected.psnr[4:], rtol=0, atol=1e-5)   # float32 sums, other batches
    assert streamed[0].error.shape == (24, 32) and streamed[0].frame is frames[4]
    mse = [float(p.error.mean()) for p in streamed]
    assert np.allclose(10 * np.log10(1 / np.array(mse)), [p.psnr for p in streamed], atol=1e-4)
    endless = (frames[i % len(frames)] for i in itertools.count())          # a camera that never stops
    first = list(itertools.islice(stream_predictions(model, endless, size=(32, 24), batch_size=4,
                                                     device=torch.device("cpu")), 6))
    assert [p.index for p in first] == [4, 5, 6, 7, 8, 9]


def test_a_size_the_model_cannot_take_is_one_error_naming_eval_size():
    model = tiny_unet().eval()                  # three levels: at least 4 pixels a side
    frames = [np.zeros((20, 28, 3), np.uint8)] * 6
    with pytest.raises(RunError, match=r"--eval-size 2x2: tiny-unet: input size 2x2 \(WxH\) is too small"):
        list(stream_predictions(model, iter(frames), size=(2, 2), batch_size=2, device=torch.device("cpu")))
