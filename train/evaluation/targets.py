"""What evaluate-predictor evaluates: the ground truth of a split (frame labels and pixel masks, from the
dataset's manifest) and the predictors named by ``--predictor`` (a .pt file, a fine-tune seed folder, or a
fine-tune run folder with several seed folders; layout: train/finetuning/adapt.py)."""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.core.errors import DataError
from pipeline.data.ground_truth import FORMATS, GroundTruth, load_ground_truth
from pipeline.data.manifests import DatasetManifest
from train.common.choices import KSHOT_PROTOCOLS
from train.common.run_folder import read_json
from pipeline.core.errors import RunError

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------------------------
# ground truth


def frame_labels(root: Path, manifest: DatasetManifest, split: str, counts: dict[str, int],
                 gt_file: str | Path | None = None) -> GroundTruth:
    """Frame-level labels of ``split``: ``gt_file`` (a path, absolute or under ``root``; its format from the
    manifest entry of the same path, else detected), or the manifest's first frame-label file present under
    ``root``. ``counts``: video -> frame count of every video of the split (formats without names need them)."""
    entries = [g for g in _split_gt(manifest, split) if g.format != "pixel-masks"]
    if gt_file is not None:
        path = Path(gt_file) if Path(gt_file).is_absolute() else root / gt_file
        known = {(root / g.path).resolve(): g.format for g in entries}
        fmt = known.get(path.resolve(), "auto")
    else:
        present = [g for g in entries if (root / g.path).exists()]
        if not entries:
            raise RunError(f"{root}: the {manifest.name} manifest lists no frame labels for {split}")
        if not present:
            raise RunError(f"{root}: no {split} ground truth of {manifest.name} found (looked for "
                             f"{', '.join(g.path for g in entries)})")
        path, fmt = root / present[0].path, present[0].format
        if present[0] is not entries[0]:
            log.warning("%s missing; using %s", root / entries[0].path, path)
    if fmt not in ("auto", *FORMATS):
        raise RunError(f"{path}: this version does not read ground-truth format {fmt!r}")
    try:
        return load_ground_truth(path, format=fmt, frame_counts=dict(sorted(counts.items())))
    except DataError as err:
        raise RunError(str(err)) from None


def check_labels(gt: GroundTruth, counts: dict[str, int], videos: list[str]) -> None:
    """RunError unless ``gt`` labels every one of ``videos`` with exactly its frame count."""
    for video in videos:
        if video not in gt.labels:
            raise RunError(f"{gt.path}: no labels for video {video}")
        if len(gt.labels[video]) != counts[video]:
            raise RunError(f"{gt.path}: video {video} has {len(gt.labels[video])} labels for "
                             f"{counts[video]} frames")


def pixel_masks(root: Path, manifest: DatasetManifest, split: str):
    """(PixelMasks or None, reason when None) for the manifest's ``pixel-masks`` entry of ``split``."""
    from pipeline.data.pixel_masks import PixelMasks

    entries = [g for g in _split_gt(manifest, split) if g.format == "pixel-masks"]
    if not entries:
        return None, f"the {manifest.name} manifest lists no pixel masks for {split}"
    path = root / entries[0].path
    if not path.exists():
        return None, f"pixel masks not found at {path}"
    try:
        return PixelMasks(path), None
    except DataError as err:
        return None, f"pixel masks unreadable: {err}"


def _split_gt(manifest: DatasetManifest, split: str):
    return manifest.split(split).ground_truth if split in manifest.splits else ()


# ---------------------------------------------------------------------------------------------------------------
# predictors to evaluate


@dataclass
class Target:
    """One evaluation: ``name`` is "" for a single predictor, else the seed folder's name (its output subfolder).

    predictor: the one model (None under the per-video protocol, then ``per_video`` maps video -> model file);
    exclude: video -> frames left out of scoring (per-video adaptation frames); run: what was evaluated (method,
    loss, components, shots, protocol, seed and the json files it came from), recorded in metrics.json.
    """

    name: str
    predictor: Path | None
    per_video: dict[str, Path] = field(default_factory=dict)
    exclude: dict[str, list[int]] = field(default_factory=dict)
    run: dict = field(default_factory=dict)
    adaptation: dict | None = None       # the seed folder's adaptation.json (None for a plain predictor file)

    def model_path(self, video: str) -> Path:
        if video in self.per_video:
            return self.per_video[video]
        if self.predictor is None or (self.run.get("protocol") == "per-video" and self.exclude.get(video)):
            raise RunError(f"{self.run.get('adaptation_json')}: no adapted predictor for video {video} "
                             f"(expected per_video/{video}.pt)")
        return self.predictor


def resolve_targets(path: Path, *, dataset: str, split: str) -> list[Target]:
    """The evaluations ``--predictor PATH`` asks for: a predictor file, a seed folder (with adaptation.json), or a
    fine-tune run folder holding seed folders (one Target each, in seed order)."""
    path = Path(path)
    if not path.exists():
        raise RunError(f"{path}: predictor file or fine-tune folder does not exist")
    if path.is_file():
        adaptation = path.parent / "adaptation.json"
        if adaptation.is_file() and read_json(adaptation).get("protocol") == "scene":
            return [_seed_target(path.parent, dataset=dataset, split=split, name="", predictor=path)]
        return [Target("", path, run=_unknown_run())]
    if (path / "adaptation.json").is_file():
        return [_seed_target(path, dataset=dataset, split=split, name="")]
    seeds = sorted((p for p in path.iterdir() if p.is_dir() and (p / "adaptation.json").is_file()),
                   key=lambda p: _seed_number(p.name))
    if not seeds:
        raise RunError(f"{path}: not a predictor file, a seed folder (adaptation.json) or a fine-tune run "
                         f"folder (seed*/adaptation.json)")
    return [_seed_target(p, dataset=dataset, split=split, name=p.name) for p in seeds]


def _unknown_run() -> dict:
    return {"method": "pre-trained", "loss": None, "components": None, "shots": 0, "protocol": None,
            "seed": None, "adaptation_json": None, "finetune_json": None, "known": False}


def _seed_number(name: str) -> tuple[int, str]:
    match = re.search(r"(\d+)$", name)
    return (int(match.group(1)) if match else 1 << 30, name)


def method_name(loss: str | None, components) -> str:
    """Row label of a fine-tuning loss: "SOFF", "SOFF (flow)", "standard", "MPN"; "pre-trained" when unknown."""
    if not loss:
        return "pre-trained"
    name = {"soff": "SOFF", "mpn": "MPN"}.get(str(loss).lower(), str(loss))
    if name == "SOFF" and components and set(components) != {"flow", "seg"}:
        name += f" ({'+'.join(components)})"
    return name


def _run_info(folder: Path, adaptation: dict) -> dict:
    """Method, loss, components, K, protocol and seed of a seed folder: from adaptation.json, else the run's
    finetune.json (top level, then its config)."""
    finetune_path = folder.parent / "finetune.json"
    if not finetune_path.is_file():
        finetune_path = folder / "finetune.json"
    finetune = read_json(finetune_path) if finetune_path.is_file() else {}
    config = finetune.get("config", {}) if isinstance(finetune.get("config"), dict) else {}
    sources = (adaptation, finetune, config)
    loss = next((d["loss"] for d in sources if d.get("loss")), None)
    components = next((d["components"] for d in sources if "components" in d), None)
    if isinstance(components, str):
        components = [c for c in components.split(",") if c]
    if components is not None and str(loss).lower() != "soff":
        components = []
    return {"method": method_name(loss, components), "loss": loss, "components": components,
            "shots": int(adaptation.get("shots", 0)), "protocol": adaptation.get("protocol"),
            "seed": adaptation.get("seed"), "adaptation_json": str(folder / "adaptation.json"),
            "finetune_json": str(finetune_path) if finetune else None, "known": True}


def _seed_target(folder: Path, *, dataset: str, split: str, name: str, predictor: Path | None = None) -> Target:
    adaptation = read_json(folder / "adaptation.json")
    protocol = adaptation.get("protocol")
    if protocol not in KSHOT_PROTOCOLS:
        raise RunError(f"{folder / 'adaptation.json'}: protocol {protocol!r}, expected one of "
                       f"{', '.join(KSHOT_PROTOCOLS)}")
    run = _run_info(folder, adaptation)
    same_data = adaptation.get("dataset") in (None, dataset)
    if not same_data:
        if protocol == "per-video":
            raise RunError(f"{folder}: adapted per video of {adaptation.get('dataset')}, not of {dataset}")
        log.warning("%s: adapted to %s, evaluated on %s", folder, adaptation.get("dataset"), dataset)
    exclude: dict[str, list[int]] = {}
    if same_data and (protocol == "per-video" or adaptation.get("split") == split):
        for clip in adaptation.get("clips", []):
            exclude.setdefault(str(clip["video"]), []).extend(int(f) for f in clip["frames"])
    exclude = {v: sorted(set(f)) for v, f in exclude.items()}
    per_video, single = _model_files(folder, adaptation)
    single = predictor or single
    if protocol == "per-video" and not per_video and single is None:
        raise RunError(f"{folder}: per-video protocol but no per_video/<video>.pt and no predictor.pt")
    if protocol == "scene" and single is None:
        raise RunError(f"{folder}: no predictor.pt")
    return Target(name, single, per_video if protocol == "per-video" else {}, exclude, run, adaptation)


def _model_files(folder: Path, adaptation: dict) -> tuple[dict[str, Path], Path | None]:
    """(video -> adapted model, the one model or None): from adaptation.json's ``models`` ({video or "*": path
    relative to the seed folder}) when it has them, else per_video/*.pt and predictor.pt found in the folder."""
    models = adaptation.get("models")
    if isinstance(models, dict) and models:
        files = {str(k): folder / str(rel) for k, rel in models.items()}
        missing = [str(p) for p in files.values() if not p.is_file()]
        if missing:
            raise RunError(f"{folder / 'adaptation.json'}: names model files that do not exist: "
                             f"{', '.join(missing[:3])}")
        return {k: p for k, p in files.items() if k != "*"}, files.get("*")
    per_video = {p.stem: p for p in sorted((folder / "per_video").glob("*.pt"))}
    single = folder / "predictor.pt"
    return per_video, single if single.is_file() else None
