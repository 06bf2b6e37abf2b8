"""The YOLOv8 -> MobileSAM segmentation teacher (labelers.yolo_sam_masks) and its ultralytics adapter.

Nothing is downloaded: the weights are random models built offline with ultralytics (``YOLO("yolov8n.yaml")``
saved with ``Model.save``, and ``build_mobile_sam()``'s state dict), written to a temporary weights folder. Random
YOLO weights give boxes of tiny confidence (about 1e-4), so the teacher here runs with ``conf=0.0`` and a small
``max_det`` to exercise the SAM prompting path. Frames are small (64x96) but MobileSAM always encodes at 1024x1024
(about 3 s per frame on a 2-core CPU), so models and results are shared through module-scoped fixtures.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from labelers import ultralytics as adapter
from labelers.base import SegmentationResult, TeacherIdentity
from labelers.weights import WeightsError
from labelers.yolo_sam_masks import (DEFAULT_CLASSES, DEFAULT_SAM_FILE, DEFAULT_YOLO_FILE, YoloSamTeacher,
                                     build_yolo_sam_teacher, describe_yolo_sam)

REPO_ROOT = Path(__file__).resolve().parents[2]
YOLO_FILE = "yolov8n.pt"
H, W = 64, 96
TEST_OPTIONS = dict(yolo_file=YOLO_FILE, classes=None, conf=0.0, max_det=3, imgsz=96, sam_batch_size=1)


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory) -> Path:
    """A weights folder with a random YOLOv8n detection checkpoint and a random MobileSAM state dict."""
    folder = tmp_path_factory.mktemp("weights")
    adapter.import_ultralytics()
    from ultralytics import YOLO
    from ultralytics.models.sam.build import build_mobile_sam
    torch.manual_seed(0)
    YOLO("yolov8n.yaml").save(str(folder / YOLO_FILE))          # built from the packaged yaml: no download
    torch.save(build_mobile_sam().state_dict(), folder / DEFAULT_SAM_FILE)
    return folder


@pytest.fixture(scope="module")
def teacher(weights_dir) -> YoloSamTeacher:
    return YoloSamTeacher(weights_dir=weights_dir, **TEST_OPTIONS)


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (2, H, W, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def result(teacher, frames) -> SegmentationResult:
    return teacher.segment(frames)


@pytest.fixture(scope="module")
def embedding0(teacher, frames):
    """MobileSAM's image embedding of frame 0, encoded alone."""
    return teacher.sam.encode(frames[0][None])


def bad_copy(weights_dir: Path, tmp_path: Path, name: str, data: bytes) -> Path:
    """A weights folder like ``weights_dir`` in which ``name`` holds ``data``."""
    folder = tmp_path / "bad"
    folder.mkdir()
    for source in weights_dir.iterdir():
        (folder / source.name).write_bytes(data if source.name == name else source.read_bytes())
    if not (folder / name).exists():
        (folder / name).write_bytes(data)
    return folder


# --------------------------------------------------------------------------------------------------
# output contract


def test_segment_shapes_dtypes_and_values(result, frames):
    assert result.masks.shape == (2, H, W) and result.masks.dtype == np.uint8
    assert set(np.unique(result.masks)) <= {0, 1}
    for i in range(2):
        boxes, scores, classes = result.boxes[i], result.scores[i], result.classes[i]
        assert boxes.dtype == np.float32 and scores.dtype == np.float32 and classes.dtype == np.int32
        assert 1 <= len(boxes) <= TEST_OPTIONS["max_det"]
        assert boxes.shape == (len(boxes), 4) and scores.shape == classes.shape == (len(boxes),)
        assert (boxes[:, [0, 2]] >= 0).all() and (boxes[:, [0, 2]] <= W).all()
        assert (boxes[:, [1, 3]] >= 0).all() and (boxes[:, [1, 3]] <= H).all()
        assert (boxes[:, 2] >= boxes[:, 0]).all() and (boxes[:, 3] >= boxes[:, 1]).all()
        assert ((classes >= 0) & (classes < 80)).all()
    assert result.masks.any()                    # random MobileSAM weights still predict some foreground


def test_merged_mask_is_or_of_single_box_decoder_calls(teacher, result, embedding0):
    """One decoder call with all boxes gives the same per-box masks as one call per box; segment ORs them."""
    boxes, embedding = result.boxes[0], embedding0
    together = teacher.sam.decode(embedding, boxes, (H, W))
    one_by_one = np.concatenate([teacher.sam.decode(embedding, boxes[i:i + 1], (H, W)) for i in range(len(boxes))])
    assert together.shape == (len(boxes), H, W) and together.dtype == bool
    np.testing.assert_array_equal(together, one_by_one)
    np.testing.assert_array_equal(result.masks[0], np.logical_or.reduce(one_by_one).astype(np.uint8))


def test_masks_match_ultralytics_sam_predict(teacher, weights_dir, frames, result, embedding0):
    """Our pre/post-processing reproduces ultralytics' own SAM predictor (fed BGR, as it expects)."""
    from ultralytics import SAM
    frame, boxes = frames[0], result.boxes[0]
    ours = teacher.sam.decode(embedding0, boxes, (H, W)).astype(np.uint8)
    theirs = SAM(str(weights_dir / DEFAULT_SAM_FILE)).predict(np.ascontiguousarray(frame[..., ::-1]),
                                                               bboxes=boxes.tolist(), conf=0.0, device="cpu",
                                                               verbose=False)[0]
    if theirs.masks is None:                     # ultralytics drops masks whose predicted IoU is <= conf
        pytest.skip("ultralytics kept no mask for these random weights")
    kept = theirs.boxes.data[:, 5].long().numpy()
    np.testing.assert_array_equal(ours[kept], theirs.masks.data.cpu().numpy().astype(np.uint8))


def test_frame_without_detections_gives_empty_mask_without_sam(weights_dir, frames, monkeypatch):
    teacher = YoloSamTeacher(weights_dir=weights_dir, **{**TEST_OPTIONS, "conf": 1.0})   # nothing scores > 1

    def no_sam(*args, **kwargs):
        raise AssertionError("SAM must not run for a frame without boxes")

    monkeypatch.setattr(teacher.sam, "encode", no_sam)
    monkeypatch.setattr(teacher.sam, "decode", no_sam)
    result = teacher.segment(frames)
    assert result.masks.shape == (2, H, W) and result.masks.dtype == np.uint8 and not result.masks.any()
    for boxes, scores, classes in zip(result.boxes, result.scores, result.classes):
        assert boxes.shape == (0, 4) and boxes.dtype == np.float32
        assert scores.shape == (0,) and scores.dtype == np.float32
        assert classes.shape == (0,) and classes.dtype == np.int32
    empty = teacher.masks_for_boxes(frames[0], np.zeros((0, 4), np.float32))
    assert empty.shape == (0, H, W) and empty.dtype == np.uint8
    assert teacher.masks_for_boxes(frames[0], []).shape == (0, H, W)


def test_sam_runs_only_on_frames_with_boxes_in_encoder_batches(teacher, monkeypatch):
    """The encoder sees the frames with boxes, ``sam_batch_size`` at a time; each frame is decoded once with all
    its boxes; frames without boxes keep an empty mask."""
    frames = np.stack([np.full((H, W, 3), i, np.uint8) for i in range(5)])
    boxes = {0: np.array([[1, 1, 9, 9]], np.float32), 2: np.array([[2, 2, 8, 8], [10, 10, 20, 20]], np.float32),
             3: np.array([[0, 0, 5, 5]], np.float32), 4: np.array([[3, 3, 6, 6]], np.float32)}
    detections = [(boxes.get(i, np.zeros((0, 4), np.float32)), np.ones(len(boxes.get(i, [])), np.float32),
                   np.zeros(len(boxes.get(i, [])), np.int32)) for i in range(5)]
    encoded, decoded = [], []

    def encode(batch):
        encoded.append([int(f[0, 0, 0]) for f in batch])
        return torch.arange(len(batch), dtype=torch.float32)[:, None] + 10 * len(encoded)

    def decode(embedding, frame_boxes, shape):
        decoded.append((float(embedding[0, 0]), len(frame_boxes)))
        masks = np.zeros((len(frame_boxes), *shape), bool)
        masks[:, 0, 0] = True
        return masks

    monkeypatch.setitem(teacher._options, "sam_batch_size", 3)
    monkeypatch.setattr(teacher.detector, "detect", lambda frames, **kwargs: detections)
    monkeypatch.setattr(teacher.sam, "encode", encode)
    monkeypatch.setattr(teacher.sam, "decode", decode)
    result = teacher.segment(frames)
    assert encoded == [[0, 2, 3], [4]]
    assert decoded == [(10.0, 1), (11.0, 2), (12.0, 1), (20.0, 1)]
    assert result.masks[:, 0, 0].tolist() == [1, 0, 1, 1, 1] and result.masks.sum() == 4


def test_frames_are_fed_as_rgb_to_both_networks(teacher):
    """A pure-red square: YOLO (which reads numpy images as BGR) and MobileSAM must both see red, not blue."""
    frame = np.zeros((H, W, 3), np.uint8)
    frame[16:48, 24:72, 0] = 255                 # RGB red
    seen = {}
    teacher.detect(frame[None])                  # ultralytics predicts with a fused copy, made on the first call
    hooks = [teacher.detector._model.predictor.model.register_forward_pre_hook(
                 lambda m, args: seen.update(yolo=args[0])),
             teacher.sam.model.image_encoder.register_forward_pre_hook(lambda m, args: seen.update(sam=args[0]))]
    calls = []
    predict = teacher.detector._model.predict

    def spy(source, **kwargs):
        calls.append(source)
        return predict(source, **kwargs)

    teacher.detector._model.predict = spy
    try:
        result = teacher.segment(frame[None])
    finally:
        del teacher.detector._model.predict
        for hook in hooks:
            hook.remove()
    assert len(result.boxes[0]) > 0, "the SAM path was not reached"
    np.testing.assert_array_equal(calls[0][0][32, 48], [0, 0, 255])          # handed to ultralytics as BGR
    yolo = seen["yolo"][0].float()                                         # RGB in [0, 1] after its preprocess
    red = yolo[0] > 0.99
    assert red.any() and (yolo[1][red] < 0.01).all() and (yolo[2][red] < 0.01).all()
    sam = seen["sam"][0].float()                                           # normalised with SAM's RGB mean/std
    red = sam[0] > (255 - 123.675) / 58.395 - 0.01
    assert red.any() and (sam[2][red] < (0 - 103.53) / 57.375 + 0.01).all()


def test_class_filter(teacher, frames, monkeypatch):
    kwargs_seen = []
    detect = teacher.detector.detect

    def spy(frames, **kwargs):
        kwargs_seen.append(kwargs)
        return detect(frames, **kwargs)

    monkeypatch.setattr(teacher.detector, "detect", spy)
    monkeypatch.setitem(teacher._options, "classes", [3, 7])
    monkeypatch.setitem(teacher._options, "max_det", 50)
    detections = teacher.detect(frames)
    assert kwargs_seen[0]["classes"] == [3, 7]
    found = np.concatenate([classes for _, _, classes in detections])
    assert len(found) and set(found.tolist()) <= {3, 7}
    monkeypatch.setitem(teacher._options, "classes", None)
    everything = np.concatenate([classes for _, _, classes in teacher.detect(frames)])
    assert len(set(everything.tolist())) > 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("half", [False, True])
def test_cuda_matches_cpu(weights_dir, frames, result, half):
    teacher = YoloSamTeacher(weights_dir=weights_dir, device="cuda", **{**TEST_OPTIONS, "half": half})
    assert teacher.device == "cuda:0" and teacher.identity().options["half"] is half
    cuda = teacher.segment(frames)
    assert cuda.masks.shape == result.masks.shape and cuda.masks.dtype == np.uint8
    for a, b in zip(cuda.boxes, result.boxes):
        assert a.dtype == np.float32 and a.shape == b.shape
        np.testing.assert_allclose(np.sort(a, axis=0), np.sort(b, axis=0), atol=0.05)
    assert (cuda.masks != result.masks).mean() < 0.01          # rounding flips a few pixels on the mask edges


# --------------------------------------------------------------------------------------------------
# identity and options


def test_identity_and_describe(teacher, weights_dir):
    identity = teacher.identity()
    assert isinstance(identity, TeacherIdentity)
    assert identity.kind == "seg" and identity.name == "yolo-mobilesam" == teacher.name
    assert identity.version.startswith(f"ultralytics-{adapter.ultralytics_version()}/")
    assert identity.weights == {YOLO_FILE: sha256(weights_dir / YOLO_FILE),
                                DEFAULT_SAM_FILE: sha256(weights_dir / DEFAULT_SAM_FILE)}
    options = identity.options
    assert options["yolo_file"] == YOLO_FILE and options["sam_file"] == DEFAULT_SAM_FILE
    assert options["classes"] is None and options["conf"] == 0.0 and options["iou"] == 0.7
    assert options["imgsz"] == 96 and options["max_det"] == 3 and options["half"] is False
    assert "sam_batch_size" not in options       # speed only
    json.dumps(identity.as_dict())               # recorded in manifests
    assert describe_yolo_sam(weights_dir=weights_dir, **TEST_OPTIONS) == identity
    assert describe_yolo_sam(weights_dir=weights_dir, device="cuda:3", **TEST_OPTIONS) == identity
    assert describe_yolo_sam(weights_dir=weights_dir, **{**TEST_OPTIONS, "conf": 0.5}) != identity


def test_defaults(weights_dir, tmp_path):
    assert DEFAULT_YOLO_FILE == "yolov8l.pt" and DEFAULT_SAM_FILE == "mobile_sam.pt"
    assert DEFAULT_CLASSES == (0, 1, 2, 3, 5, 7, 24, 26, 28, 36)
    folder = tmp_path / "w"
    folder.mkdir()
    (folder / DEFAULT_YOLO_FILE).write_bytes((weights_dir / YOLO_FILE).read_bytes())
    (folder / DEFAULT_SAM_FILE).write_bytes((weights_dir / DEFAULT_SAM_FILE).read_bytes())
    identity = describe_yolo_sam(weights_dir=folder)
    assert identity.options["classes"] == list(DEFAULT_CLASSES)
    assert (identity.options["conf"], identity.options["iou"], identity.options["imgsz"]) == (0.25, 0.7, 640)
    assert set(identity.weights) == {"yolov8l.pt", "mobile_sam.pt"}


def test_describe_does_not_import_ultralytics_or_torch(weights_dir):
    code = ("import sys; from labelers.yolo_sam_masks import describe_yolo_sam; "
            f"i = describe_yolo_sam(weights_dir={str(weights_dir)!r}, yolo_file={YOLO_FILE!r}); "
            "assert len(i.weights) == 2; print(sorted(m for m in ('ultralytics', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("options, message", [
    ({"conf": 1.5}, "conf"), ({"iou": -0.1}, "iou"), ({"imgsz": 100}, "multiple of 32"), ({"max_det": 0}, "max_det"),
    ({"classes": []}, "classes"), ({"classes": [0, -1]}, "classes"), ({"classes": "person"}, "classes"),
    ({"yolo_file": "sub/yolov8n.pt"}, "bare file name"), ({"sam_file": YOLO_FILE}, "same file"),
    ({"half": "yes"}, "half"), ({"sam_batch_size": 0}, "sam_batch_size"),
])
def test_bad_options(weights_dir, options, message):
    with pytest.raises(ValueError, match=message):
        describe_yolo_sam(weights_dir=weights_dir, **{**TEST_OPTIONS, **options})
    with pytest.raises(ValueError, match=message):
        YoloSamTeacher(weights_dir=weights_dir, **{**TEST_OPTIONS, **options})


def test_unknown_option(weights_dir):
    with pytest.raises(TypeError, match="colour"):
        describe_yolo_sam(weights_dir=weights_dir, colour="red")
    with pytest.raises(TypeError, match="colour"):
        YoloSamTeacher(weights_dir=weights_dir, colour="red")


def test_bad_device_and_class_ids(weights_dir):
    with pytest.raises(ValueError, match="device"):
        YoloSamTeacher(weights_dir=weights_dir, device="gpu", **TEST_OPTIONS)
    with pytest.raises(ValueError, match="half precision"):
        YoloSamTeacher(weights_dir=weights_dir, device="cpu", **{**TEST_OPTIONS, "half": True})
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            YoloSamTeacher(weights_dir=weights_dir, device="cuda:0", **TEST_OPTIONS)
    with pytest.raises(ValueError, match="beyond the 80 classes"):
        YoloSamTeacher(weights_dir=weights_dir, **{**TEST_OPTIONS, "classes": [0, 80]})


def test_factory(weights_dir):
    teacher = build_yolo_sam_teacher(weights_dir=weights_dir, device="cpu", **TEST_OPTIONS)
    assert isinstance(teacher, YoloSamTeacher) and teacher.device == "cpu"


# --------------------------------------------------------------------------------------------------
# weights errors: one WeightsError naming the file, its format and the official source


YOLO_PARTS = ("YOLOv8 detection", "DetectionModel", "ultralytics/assets")
SAM_PARTS = ("MobileSAM", "image_encoder", "ChaoningZhang/MobileSAM", "ultralytics/assets")


def expect_weights_error(folder: Path, name: str, parts: tuple[str, ...], problem: str, **options):
    with pytest.raises(WeightsError) as caught:
        YoloSamTeacher(weights_dir=folder, **{**TEST_OPTIONS, **options})
    message = str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert str(folder / name) in message, message
    for part in (*parts, problem):
        assert part in message, f"{part!r} not in: {message}"
    return message


def test_missing_weights(weights_dir, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    expect_weights_error(empty, YOLO_FILE, YOLO_PARTS, "file not found")
    only_yolo = bad_copy(weights_dir, tmp_path, YOLO_FILE, (weights_dir / YOLO_FILE).read_bytes())
    (only_yolo / DEFAULT_SAM_FILE).unlink()
    expect_weights_error(only_yolo, DEFAULT_SAM_FILE, SAM_PARTS, "file not found")
    with pytest.raises(WeightsError, match="no weights folder"):
        YoloSamTeacher(weights_dir=None, **TEST_OPTIONS)
    with pytest.raises(WeightsError, match="no weights folder"):
        describe_yolo_sam(**TEST_OPTIONS)


def test_truncated_weights(weights_dir, tmp_path):
    yolo = (weights_dir / YOLO_FILE).read_bytes()
    folder = bad_copy(weights_dir, tmp_path, YOLO_FILE, yolo[:len(yolo) // 2])
    expect_weights_error(folder, YOLO_FILE, YOLO_PARTS, "not a torch.save zip")
    sam = (weights_dir / DEFAULT_SAM_FILE).read_bytes()
    (folder / YOLO_FILE).write_bytes(yolo)
    (folder / DEFAULT_SAM_FILE).write_bytes(sam[:len(sam) - 1000])
    expect_weights_error(folder, DEFAULT_SAM_FILE, SAM_PARTS, "torch.load(weights_only=True) failed")
    (folder / DEFAULT_SAM_FILE).write_bytes(b"")
    expect_weights_error(folder, DEFAULT_SAM_FILE, SAM_PARTS, "empty")


def test_wrong_weights(weights_dir, tmp_path):
    yolo = (weights_dir / YOLO_FILE).read_bytes()
    sam = (weights_dir / DEFAULT_SAM_FILE).read_bytes()
    swapped = bad_copy(weights_dir, tmp_path, YOLO_FILE, sam)                # MobileSAM's file as the YOLO file
    expect_weights_error(swapped, YOLO_FILE, YOLO_PARTS, "holds no ultralytics model")
    (swapped / YOLO_FILE).write_bytes(yolo)
    (swapped / DEFAULT_SAM_FILE).write_bytes(yolo)                           # a YOLO checkpoint as MobileSAM's file
    expect_weights_error(swapped, DEFAULT_SAM_FILE, SAM_PARTS, "weights_only")
    torch.save({"backbone.weight": torch.zeros(3)}, swapped / DEFAULT_SAM_FILE)
    expect_weights_error(swapped, DEFAULT_SAM_FILE, SAM_PARTS, "no image_encoder, prompt_encoder, mask_decoder")
    state = torch.load(weights_dir / DEFAULT_SAM_FILE, weights_only=True)
    state["mask_decoder.iou_token.weight"] = torch.zeros(2, 7)
    torch.save({"model": state}, swapped / DEFAULT_SAM_FILE)                  # nested, as ultralytics accepts
    expect_weights_error(swapped, DEFAULT_SAM_FILE, SAM_PARTS, "do not fit MobileSAM")
    (swapped / DEFAULT_SAM_FILE).write_bytes(sam)
    adapter.import_ultralytics()
    from ultralytics import YOLO
    YOLO("yolov8n-seg.yaml").save(str(swapped / YOLO_FILE))                   # a segmentation model
    expect_weights_error(swapped, YOLO_FILE, YOLO_PARTS, "SegmentationModel")


def test_weights_error_before_ultralytics_sees_a_name(tmp_path, monkeypatch):
    """A bare model name that is not a local file is refused (ultralytics would download it)."""
    monkeypatch.chdir(tmp_path)
    for name in ("yolov8n.pt", "yolo11n.pt"):
        with pytest.raises(WeightsError, match="file not found"):
            adapter.load_yolo(name)
    with pytest.raises(WeightsError, match="file not found"):
        adapter.load_mobile_sam("mobile_sam.pt")
    (tmp_path / "yolov5s.pt").write_bytes(b"PK")
    with pytest.raises(WeightsError, match="rename the file"):
        adapter.check_yolo_checkpoint(tmp_path / "yolov5s.pt")
    (tmp_path / "model.pth").write_bytes(b"PK")
    with pytest.raises(WeightsError, match=r"\*\.pt"):
        adapter.check_yolo_checkpoint(tmp_path / "model.pth")


# --------------------------------------------------------------------------------------------------
# offline guarantee and import side effects, in a fresh process


NO_NETWORK_SCRIPT = textwrap.dedent("""
    import json, os, socket, sys
    attempts = []

    def refuse(name):
        def guard(*args, **kwargs):
            attempts.append(f"{name}{args[1:] if name.startswith('socket.') else args}")
            raise OSError(f"network disabled by the test ({name})")
        return guard

    socket.socket.connect = refuse("socket.connect")
    socket.socket.connect_ex = refuse("socket.connect_ex")
    socket.create_connection = refuse("create_connection")
    socket.getaddrinfo = refuse("getaddrinfo")

    import cv2, numpy as np, torch
    cv2.setNumThreads(2)
    torch_load, np_options = torch.load, np.get_printoptions()
    from labelers.weights import WeightsError
    from labelers import ultralytics as adapter
    try:
        adapter.load_yolo("yolov8n.pt")            # a bare name, not a file here: must not be downloaded
        bare = "loaded"
    except WeightsError as e:
        bare = str(e)
    from labelers.yolo_sam_masks import YoloSamTeacher
    teacher = YoloSamTeacher(weights_dir=sys.argv[1], **json.loads(sys.argv[2]))
    frames = np.random.default_rng(1).integers(0, 256, (1, 64, 96, 3), dtype=np.uint8)
    result = teacher.segment(frames)
    config = os.environ["YOLO_CONFIG_DIR"]
    print(json.dumps({
        "attempts": attempts, "bare": bare, "boxes": len(result.boxes[0]), "mask_sum": int(result.masks.sum()),
        "config_dir": config, "config_files": sorted(os.listdir(config)) if os.path.isdir(config) else None,
        "torch_load_unpatched": torch.load is torch_load and torch.load is torch.serialization.load,
        "cv2_threads": cv2.getNumThreads(), "np_options_kept": np.get_printoptions() == np_options,
        "offline": __import__("ultralytics.utils", fromlist=["ONLINE"]).ONLINE is False,
        "sync": __import__("ultralytics.utils", fromlist=["SETTINGS"]).SETTINGS["sync"],
    }))
""")


def test_no_network_and_private_config_in_a_fresh_process(weights_dir, tmp_path):
    """Import, build and segment with every socket connection and DNS lookup refused and recorded: nothing is
    attempted; ultralytics' settings go to a private folder (not $HOME, not an inherited YOLO_CONFIG_DIR)."""
    home, inherited = tmp_path / "home", tmp_path / "inherited"
    home.mkdir()
    inherited.mkdir()
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
           "YOLO_CONFIG_DIR": str(inherited),
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)}
    for name in ("YOLO_OFFLINE", "YOLO_AUTOINSTALL", "YOLO_VERBOSE"):
        env.pop(name, None)
    out = subprocess.run([sys.executable, "-c", NO_NETWORK_SCRIPT, str(weights_dir), json.dumps(TEST_OPTIONS)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["attempts"] == []
    assert "file not found" in report["bare"] and "yolov8n.pt" in report["bare"]
    assert report["boxes"] > 0 and report["mask_sum"] > 0
    assert report["offline"] and report["sync"] is False
    assert report["config_dir"] != str(inherited) and "soff-ultralytics-" in report["config_dir"]
    assert report["config_files"] == ["Ultralytics"]
    assert list(inherited.iterdir()) == []
    assert [p for p in home.rglob("*") if "ltralytics" in p.name] == []     # (CUDA may add ~/.nv)
    assert not Path(report["config_dir"]).exists()                   # removed at exit
    assert report["torch_load_unpatched"] and report["cv2_threads"] == 2 and report["np_options_kept"]
    assert "Creating new Ultralytics Settings" not in out.stdout + out.stderr      # YOLO_VERBOSE=false
