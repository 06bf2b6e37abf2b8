"""The weight-free teachers (DIS flow, background-subtraction masks) and the teacher registry.

Synthetic tests check exact geometry (a known shift, a moving square); the ``real_data`` tests run the teachers on
UCSD Ped2 training video 01 from ../shared/datasets and are skipped when it is absent.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from labelers.base import SegmentationResult, TeacherIdentity
from labelers.bgsub_masks import BackgroundSubtractionTeacher
from labelers.dis_flow import DisFlowTeacher
from labelers.registry import (FLOW_TEACHERS, SEG_TEACHERS, build_flow_teacher, build_seg_teacher,
                               warmup_indices)

REPO = Path(__file__).resolve().parents[2]
PED2 = REPO.parent / "shared" / "datasets" / "ped2"


# ---------------------------------------------------------------- helpers

def textured_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """(H, W, 3) uint8 smoothed noise, grey tiled to RGB: texture at every scale DIS looks at."""
    noise = np.random.default_rng(seed).normal(size=(height, width)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 2.0)
    grey = cv2.normalize(smooth, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


def shifted(image: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """``image`` with its content moved dx pixels right and dy pixels down (wrapping at the borders)."""
    return np.roll(image, shift=(dy, dx), axis=(0, 1))


def backward_warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Sample (H, W) float32 ``image`` at (x + flow_x, y + flow_y): frame t+1 brought back onto frame t."""
    h, w = image.shape
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(image, grid_x + flow[0], grid_y + flow[1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def grey(frame: np.ndarray) -> np.ndarray:
    return frame[..., 0].astype(np.float32)


def moving_square_video(num_frames: int = 40, size: int = 12) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """(F, 96, 128, 3) uint8 frames of a white square jumping over a textured background, and its corners.

    The square visits the cells of an 8 x 6 grid of 16-pixel cells, a different cell in each frame, so that
    no pixel is covered in more than one frame (and the background model learns the texture)."""
    background = textured_image(96, 128, seed=1) // 2             # dark texture, values 0..127
    frames, corners = [], []
    for i in range(num_frames):
        cell = (i * 7) % 48
        x0, y0 = 16 * (cell % 8) + 2, 16 * (cell // 8) + 2
        frame = background.copy()
        frame[y0:y0 + size, x0:x0 + size] = 230
        frames.append(frame)
        corners.append((x0, y0))
    return np.stack(frames), corners


def check_result_structure(result: SegmentationResult, frames: np.ndarray) -> None:
    """Shapes, dtypes and value ranges of a segmentation result against its (N, H, W, 3) input."""
    n, h, w = frames.shape[:3]
    assert result.masks.shape == (n, h, w) and result.masks.dtype == np.uint8
    assert set(np.unique(result.masks)) <= {0, 1}
    for mask, boxes, scores, classes in zip(result.masks, result.boxes, result.scores, result.classes):
        k = len(boxes)
        assert boxes.shape == (k, 4) and boxes.dtype == np.float32
        assert scores.shape == (k,) and scores.dtype == np.float32
        assert classes.shape == (k,) and classes.dtype == np.int32
        assert np.all(classes == -1)
        assert np.all((scores > 0) & (scores <= 1))
        assert np.all(boxes[:, 0] >= 0) and np.all(boxes[:, 1] >= 0)
        assert np.all(boxes[:, 2] <= w) and np.all(boxes[:, 3] <= h)
        assert np.all(boxes[:, 2] > boxes[:, 0]) and np.all(boxes[:, 3] > boxes[:, 1])
        count, _ = cv2.connectedComponents(mask, connectivity=8)
        assert k == count - 1                                      # one box per component of the mask
        covered = np.zeros_like(mask)
        for x1, y1, x2, y2 in boxes.astype(int):
            covered[y1:y2, x1:x2] = 1
        assert np.all(covered[mask == 1] == 1)                     # every mask pixel lies in a box


# ---------------------------------------------------------------- DIS flow, synthetic

def test_dis_recovers_a_known_shift_for_a_batch_of_pairs():
    image = textured_image(120, 160)
    frames_t = np.stack([image, image])
    frames_t1 = np.stack([shifted(image, 3, -2), shifted(image, -1, 2)])
    flow = DisFlowTeacher().flow(frames_t, frames_t1)
    assert flow.shape == (2, 2, 120, 160) and flow.dtype == np.float32
    interior = (slice(16, -16), slice(16, -16))
    for pair, (dx, dy) in enumerate([(3, -2), (-1, 2)]):
        assert abs(np.median(flow[pair, 0][interior]) - dx) < 0.3
        assert abs(np.median(flow[pair, 1][interior]) - dy) < 0.3


@pytest.mark.parametrize("preset", ["ultrafast", "fast"])
def test_dis_faster_presets_recover_the_shift(preset):
    image = textured_image(96, 128)
    flow = DisFlowTeacher(preset=preset).flow(image[None], shifted(image, 3, -2)[None])
    assert abs(np.median(flow[0, 0, 16:-16, 16:-16]) - 3) < 0.3
    assert abs(np.median(flow[0, 1, 16:-16, 16:-16]) + 2) < 0.3


def test_dis_is_deterministic_across_calls():
    image = textured_image(64, 96)
    teacher = DisFlowTeacher()
    first = teacher.flow(image[None], shifted(image, 2, 1)[None])
    teacher.flow(image[None], shifted(image, -3, 0)[None])
    np.testing.assert_array_equal(teacher.flow(image[None], shifted(image, 2, 1)[None]), first)


@pytest.mark.parametrize("frames_t, frames_t1", [
    (np.zeros((1, 32, 32, 3), np.uint8), np.zeros((1, 32, 48, 3), np.uint8)),     # sizes differ
    (np.zeros((32, 32, 3), np.uint8), np.zeros((32, 32, 3), np.uint8)),           # no batch axis
    (np.zeros((1, 32, 32), np.uint8), np.zeros((1, 32, 32), np.uint8)),           # no channels
    (np.zeros((1, 32, 32, 3), np.float32), np.zeros((1, 32, 32, 3), np.float32)),  # not uint8
])
def test_dis_rejects_bad_batches(frames_t, frames_t1):
    with pytest.raises(ValueError):
        DisFlowTeacher(preset="ultrafast").flow(frames_t, frames_t1)


def test_dis_options_are_checked_and_recorded():
    with pytest.raises(ValueError, match=r"'slow'.*ultrafast, fast, medium"):
        DisFlowTeacher(preset="slow")
    with pytest.raises(ValueError, match="-1"):
        DisFlowTeacher(variational_refinement_iterations=-1)
    identity = DisFlowTeacher(preset="fast", variational_refinement_iterations=2).identity()
    assert isinstance(identity, TeacherIdentity)
    assert (identity.kind, identity.name, identity.weights) == ("flow", "dis", {})
    assert identity.version == f"opencv-{cv2.__version__}/1"
    assert identity.options["preset"] == "fast"
    assert identity.options["variational_refinement_iterations"] == 2
    assert DisFlowTeacher().identity().options["preset"] == "medium"


# ---------------------------------------------------------------- background subtraction, synthetic

def test_bgsub_finds_a_moving_square():
    frames, corners = moving_square_video()
    teacher = BackgroundSubtractionTeacher()
    teacher.begin_video(frames[warmup_indices(len(frames), 20)])
    result = teacher.segment(frames[[3, 17]])
    check_result_structure(result, frames[[3, 17]])
    for i, frame_index in enumerate([3, 17]):
        x0, y0 = corners[frame_index]
        square = np.zeros((96, 128), np.uint8)
        square[y0:y0 + 12, x0:x0 + 12] = 1
        np.testing.assert_array_equal(result.masks[i], square)
        np.testing.assert_array_equal(result.boxes[i], [[x0, y0, x0 + 12, y0 + 12]])   # pixel edges
        np.testing.assert_array_equal(result.scores[i], [1.0])


def test_bgsub_blank_video_gives_empty_results():
    frames = np.full((12, 48, 64, 3), 120, dtype=np.uint8)
    teacher = BackgroundSubtractionTeacher()
    teacher.begin_video(frames[::3])
    result = teacher.segment(frames)
    check_result_structure(result, frames)
    assert not result.masks.any()
    assert all(b.shape == (0, 4) for b in result.boxes)
    assert all(s.shape == (0,) for s in result.scores) and all(c.shape == (0,) for c in result.classes)


def test_bgsub_needs_begin_video_and_matching_frames():
    frames, _ = moving_square_video(num_frames=6)
    teacher = BackgroundSubtractionTeacher()
    with pytest.raises(RuntimeError, match="begin_video"):
        teacher.segment(frames)
    with pytest.raises(ValueError):
        teacher.begin_video(frames[:0])
    teacher.begin_video(frames)
    with pytest.raises(ValueError, match="64x48"):
        teacher.segment(np.zeros((1, 48, 64, 3), np.uint8))
    with pytest.raises(ValueError):
        teacher.segment(frames[..., 0])


def test_bgsub_options_are_checked_and_recorded():
    with pytest.raises(ValueError, match=r"'knn'.*mog2"):
        BackgroundSubtractionTeacher(method="knn")
    with pytest.raises(ValueError, match="1.5"):
        BackgroundSubtractionTeacher(shadow_threshold=1.5)
    with pytest.raises(ValueError, match="-4"):
        BackgroundSubtractionTeacher(min_area=-4)
    identity = BackgroundSubtractionTeacher(min_area=50, close_size=7).identity()
    assert (identity.kind, identity.name, identity.weights) == ("seg", "bgsub", {})
    assert identity.version == f"opencv-{cv2.__version__}/1"
    assert identity.options["min_area"] == 50 and identity.options["close_size"] == 7
    assert identity.options["method"] == "mog2"
    assert {"history", "var_threshold", "detect_shadows", "shadow_threshold", "warmup_passes",
            "open_size"} <= set(identity.options)


# ---------------------------------------------------------------- registry

def test_registry_builds_teachers_by_name():
    flow = build_flow_teacher("dis", preset="fast", weights_dir="/nowhere", device="cuda:0")
    assert isinstance(flow, DisFlowTeacher) and flow.identity().options["preset"] == "fast"
    assert flow.device == "cpu"
    seg = build_seg_teacher("bgsub", min_area=10)
    assert isinstance(seg, BackgroundSubtractionTeacher) and seg.identity().options["min_area"] == 10
    assert set(FLOW_TEACHERS) == {"dis", "gma"} and set(SEG_TEACHERS) == {"bgsub", "yolo-mobilesam"}


def test_registry_names_unknown_teachers_and_known_ones():
    with pytest.raises(ValueError, match=r"unknown flow teacher 'foo' \(known: dis, gma\)"):
        build_flow_teacher("foo")
    with pytest.raises(ValueError, match=r"unknown segmentation teacher 'gma' \(known: bgsub, yolo-mobilesam\)"):
        build_seg_teacher("gma")


def test_registry_import_loads_no_teacher():
    code = "import sys, labelers.registry; print(sorted(m for m in ('cv2', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_warmup_indices_spread_over_the_video():
    assert warmup_indices(120) == list(range(0, 60, 2)) + list(range(61, 120, 2))
    assert warmup_indices(10, 3) == [0, 5, 9]
    assert warmup_indices(5) == [0, 1, 2, 3, 4]
    assert warmup_indices(7, 1) == [3]
    for n, k in [(1000, 60), (61, 60), (180, 7)]:
        indices = warmup_indices(n, k)
        assert len(indices) == k and indices[0] == 0 and indices[-1] == n - 1
        assert all(b > a for a, b in zip(indices, indices[1:]))
    for bad in (0, -3, 2.5):
        with pytest.raises(ValueError, match=str(bad)):
            warmup_indices(bad)


# ---------------------------------------------------------------- real data: UCSD Ped2 training video 01

@pytest.fixture(scope="module")
def ped2_video01() -> np.ndarray:
    """All 120 frames of Ped2 training video 01, (120, 240, 360, 3) RGB uint8."""
    if not (PED2 / "training" / "frames" / "01").is_dir():
        pytest.skip(f"Ped2 frames not found under {PED2}")
    from pipeline.data.frame_source import open_frame_source
    source = open_frame_source(PED2, "training")
    return np.stack(list(source.iter_frames("01")))


@pytest.fixture(scope="module")
def ped2_sample(ped2_video01) -> np.ndarray:
    return ped2_video01[warmup_indices(len(ped2_video01))]


@pytest.mark.real_data
def test_dis_flow_explains_motion_on_ped2(ped2_video01):
    starts = [10, 40]
    frames_t, frames_t1 = ped2_video01[starts], ped2_video01[[t + 1 for t in starts]]
    flow = DisFlowTeacher().flow(frames_t, frames_t1)
    assert flow.shape == (2, 2, 240, 360) and flow.dtype == np.float32
    for i in range(len(starts)):
        before, after = grey(frames_t[i]), grey(frames_t1[i])
        moving = np.abs(after - before) > 20
        assert moving.sum() > 500                                   # pedestrians walk in these frames
        zero_flow_error = np.abs(after - before)[moving].mean()
        warped_error = np.abs(backward_warp(after, flow[i]) - before)[moving].mean()
        assert warped_error < 0.7 * zero_flow_error


@pytest.mark.real_data
def test_bgsub_masks_cover_pedestrians_on_ped2(ped2_video01, ped2_sample):
    teacher = BackgroundSubtractionTeacher()
    teacher.begin_video(ped2_sample)
    frames = ped2_video01[40:50]
    result = teacher.segment(frames)
    check_result_structure(result, frames)
    video = ped2_video01[..., 0].astype(np.int16)
    for i, t in enumerate(range(40, 50)):
        mask = result.masks[i]
        assert 0.005 < mask.mean() < 0.15
        assert len(result.boxes[i]) >= 5                            # a crowd walks across the scene
        # pixels that differ from both neighbouring frames belong to something moving at time t
        moving = (np.abs(video[t] - video[t - 1]) > 30) & (np.abs(video[t] - video[t + 1]) > 30)
        assert moving.sum() > 200
        near_mask = cv2.dilate(mask, np.ones((3, 3), np.uint8))
        assert near_mask[moving].mean() > 0.9
        # and most pixels that changed since the previous frame (old or new position) are near the mask
        changed = np.abs(video[t] - video[t - 1]) > 30
        assert near_mask[changed].mean() > 0.5


@pytest.mark.real_data
def test_bgsub_result_does_not_depend_on_the_batch(ped2_video01, ped2_sample):
    frames = ped2_video01[40:50]
    first = BackgroundSubtractionTeacher()
    first.begin_video(ped2_sample)
    whole = first.segment(frames)
    second = BackgroundSubtractionTeacher()
    second.begin_video(ped2_sample)
    tail = second.segment(frames[5:])
    np.testing.assert_array_equal(tail.masks, whole.masks[5:])
    for i in range(5):
        np.testing.assert_array_equal(tail.boxes[i], whole.boxes[5 + i])
        np.testing.assert_array_equal(tail.scores[i], whole.scores[5 + i])
    # begin_video starts afresh: warming the used teacher again reproduces the first result
    first.begin_video(ped2_sample)
    np.testing.assert_array_equal(first.segment(frames[::-1]).masks[::-1], whole.masks)
