"""What score-video reads: the videos to score and the predictor (a .pt file or a fine-tune seed folder); the
calibration set is :mod:`train.evaluation.video_inputs`'s."""
from __future__ import annotations

from pathlib import Path

from pipeline.core.errors import RunError
from train.common.run_folder import read_json
from train.evaluation.video_inputs import VideoInput, videos_at

ADAPTATION_FILE, MODEL_FILE = "adaptation.json", "predictor.pt"


def resolve_predictor(path: Path) -> tuple[Path, dict | None]:
    """(the .pt file, the fine-tune run's adaptation record or None) for ``--predictor`` (a .pt file or a
    fine-tune seed folder holding predictor.pt and adaptation.json)."""
    path = Path(path)
    if path.is_dir():
        model = path / MODEL_FILE
        if not model.is_file():
            raise RunError(f"--predictor {path}: a folder without {MODEL_FILE} (give a .pt file or a fine-tune "
                           "seed folder, e.g. runs/ft/seed0)")
        record = path / ADAPTATION_FILE
    else:
        model, record = path, path.parent / ADAPTATION_FILE
    adaptation = read_json(record) if record.is_file() else None
    if adaptation is not None and adaptation.get("protocol") == "per-video":
        raise RunError(f"--predictor {path}: adapted per test video (per-video protocol); score-video needs one "
                       "model for the camera (the scene protocol)")
    return model, adaptation


def resolve_videos(paths, fps: float | None) -> list[VideoInput]:
    """Every video the arguments name: a video file, a frame folder, a folder of videos (and frame folders),
    or a dataset folder (its testing/ split). Two videos of the same name are a RunError."""
    found: list[VideoInput] = []
    for path in map(Path, paths):
        found += videos_at(path, fps)
    names: dict[str, Path] = {}
    for item in found:
        if item.name in names:
            raise RunError(f"{item.location}: two inputs are named {item.name!r} (also {names[item.name]}); their "
                           "outputs would share DIR/{name}/: rename one or score them apart")
        names[item.name] = item.location
    if not found:
        raise RunError(f"{', '.join(map(str, paths))}: no videos to score")
    return found
