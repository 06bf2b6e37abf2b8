"""Scoring (train.evaluation.scoring) on synthetic PSNRs and labels: hand values, min-max per video, pooled and
per-video AUC against an independent rank computation, the pixel AUC, abnormal spans of the plots.
"""
from __future__ import annotations


import numpy as np
import pytest

from train.evaluation import scoring

NAN = np.nan


def mann_whitney_auc(labels, scores) -> float:
    """AUC as P(score of an abnormal > score of a normal) + 0.5 P(tie), over all pairs (no sklearn)."""
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=float)
    pos, neg = scores[labels == 1], scores[labels == 0]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


# ---------------------------------------------------------------------------------------------------------------
# scoring on synthetic values


def test_psnr_hand_values_and_cap():
    target = np.zeros((2, 3, 4, 4))
    predicted = np.stack([np.full((3, 4, 4), 0.1), np.zeros((3, 4, 4))])   # MSE 0.01 -> 20 dB; MSE 0 -> cap
    assert scoring.psnr(predicted, target) == pytest.approx([20.0, scoring.PSNR_CAP_DB])
    assert scoring.psnr_from_mse([1.0, 0.001]) == pytest.approx([0.0, 30.0])
    with pytest.raises(ValueError):
        scoring.psnr_from_mse([-1.0])


def test_minmax_per_video_first_frames_and_excluded_frames_left_out():
    psnr = [NAN, NAN, 99.0, 5.0, 30.0, 20.0, 25.0, 40.0]
    labels = [0, 0, 0, 0, 0, 1, 1, 0]
    v = scoring.score_video("a", psnr, labels, past_frames=4)
    # frames 0-3 left out (even 2 and 3, which have values); min 20, max 40 over frames 4-7
    assert v.scored.tolist() == [False] * 4 + [True] * 4
    assert np.isnan(v.score[:4]).all()
    assert v.score[4:] == pytest.approx([0.5, 1.0, 0.75, 0.0])
    # leaving out frame 7 (e.g. an adaptation frame) also takes it out of the min-max: now min 20, max 30
    v = scoring.score_video("a", psnr, labels, past_frames=4, exclude=[7, 100])
    assert v.scored.tolist() == [False] * 4 + [True] * 3 + [False]
    assert v.score[4:7] == pytest.approx([0.0, 1.0, 0.5])
    assert np.isnan(v.score[7])


def test_pooled_and_per_video_auc_differ_and_single_class_video_is_reported():
    psnr = {"A": [50.0, 40.0, 45.0, 30.0], "B": [30.0, 10.0, 20.0, 25.0], "C": [12.0, 18.0, 15.0, 11.0]}
    labels = {"A": [0, 0, 0, 1], "B": [0, 1, 1, 0], "C": [0, 0, 0, 0]}
    videos = scoring.score_videos(psnr, labels, past_frames=0)
    assert videos["A"].score == pytest.approx([0.0, 0.5, 0.25, 1.0])
    assert videos["B"].score == pytest.approx([0.0, 1.0, 0.5, 0.25])
    per_video = scoring.per_video_auc(videos)
    assert per_video.aucs == {"A": 1.0, "B": 1.0, "C": None}
    assert per_video.single_class == ["C"] and per_video.mean == 1.0
    # pooled over A and B: 3 abnormal x 5 normal pairs; the abnormal 0.5 of B ties with the normal 0.5 of A
    ab = {k: videos[k] for k in "AB"}
    assert scoring.frame_auc(ab) == pytest.approx(14.5 / 15)
    pooled_labels, pooled_scores = scoring.pooled_arrays(videos)
    assert len(pooled_labels) == 12
    assert scoring.frame_auc(videos) == pytest.approx(mann_whitney_auc(pooled_labels, pooled_scores))
    assert scoring.frame_auc({"C": videos["C"]}) is None      # one class pooled: undefined, not an exception


def test_constant_psnr_video_is_defined():
    v = scoring.score_video("flat", [NAN, 7.0, 7.0, 7.0], [0, 0, 1, 0], past_frames=1)
    assert v.constant and v.score[1:] == pytest.approx([0.0, 0.0, 0.0])
    assert scoring.per_video_auc({"flat": v}).aucs["flat"] == 0.5   # all tied
    single = scoring.score_video("one", [NAN, 3.0], [0, 1], past_frames=1)   # one scored frame: no range either
    assert single.constant and single.score[1] == 0.0


def test_auc_matches_an_independent_rank_computation():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 300)
    scores = np.round(rng.random(300) + 0.3 * labels, 1)     # rounded: many ties
    assert scoring.auc(labels, scores) == pytest.approx(mann_whitney_auc(labels, scores))


def test_pixel_auc_hand_case_and_sampling():
    errors = np.array([[0.1, 0.4, 0.35], [0.8, 0.5, 0.2]])
    masks = np.array([[0, 0, 1], [1, 0, 1]])
    # abnormal {0.35, 0.8, 0.2} vs normal {0.1, 0.4, 0.5}: 1 + 3 + 1 wins of 9 pairs
    assert scoring.pixel_auc(errors, masks) == pytest.approx(5 / 9)
    assert scoring.pixel_auc(errors, np.zeros_like(masks)) is None
    index = scoring.pixel_sample_index(10, 20, 50, seed=0)
    assert len(index) == 50 and (np.diff(index) > 0).all() and index.max() < 200
    assert (index == scoring.pixel_sample_index(10, 20, 50, seed=0)).all()
    assert (scoring.pixel_sample_index(10, 20, 0) == np.arange(200)).all()


def test_runs_of_ones():
    assert scoring.runs_of_ones([0, 1, 1, 0, 1]) == [(1, 3), (4, 5)]
    assert scoring.runs_of_ones([0, 0]) == []


