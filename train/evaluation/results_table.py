"""results-table: the evaluations of several runs as one Markdown table in the layout of the SOFF paper's
Tables 1-3 (rows: target dataset and method; columns: K-shot), each cell "mean ± std" of the AUC in % over seeds.

Every ``metrics.json`` written by evaluate-predictor says what it evaluated (``run``: method, shots K, protocol,
seed; ``arch``). A predictor evaluated without a fine-tune folder is K = 0, method "pre-trained". As in the paper,
where a fine-tuned row has no K = 0 result of its own, its K = 0 cell is the pre-trained predictor's of the same
dataset and architecture (marked with a dagger).
"""
from __future__ import annotations

import functools
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

log = logging.getLogger(__name__)

ARCH_NAMES = {"unet3": "UNet-3layer", "unet4": "UNet-4layer", "mpn": "MPN", "zxvad": "zxVAD"}
METRICS = {"frame": "frame_auc", "per-video": "per_video_mean_auc", "pixel": "pixel_auc", "raw": "frame_auc_raw",
           "calibrated": "frame_auc_calibrated", "combined": "frame_auc_combined"}
OPTIONAL = ("raw", "calibrated", "combined")     # absent from metrics.json files written before they existed
PAPER_SHOTS = (0, 1, 10)
PRETRAINED = "pre-trained"
SHARED_K0 = "†"


class EvalData(NamedTuple):
    """What an evaluation's AUCs were computed on; evaluations pool into one row only where these are equal."""

    root: str | None
    gt_sha256: str | None
    eval_size: tuple
    videos: tuple
    source_predictor: str | None        # sha256 of the pre-trained predictor (the fine-tune's source)


DATA_FIELDS = {"root": "data root", "gt_sha256": "ground-truth sha256", "eval_size": "evaluation size",
               "videos": "video list", "source_predictor": "pre-trained predictor (sha256)"}


@dataclass(frozen=True)
class Floors:
    """The floors beside one evaluation: the copy-last frame AUC on the same frames (in [0, 1]) and whether the
    evaluated model beat it; the verdict of the pre-trained predictor it comes from (train-predictor's held-out
    PSNR against copy-last) and of the SFO-Net that taught it (the SOFF gate's record in finetune.json)."""

    copy_last: float | None = None
    above_copy_last: bool | None = None
    predictor: str | None = None        # "cleared (+9.02 dB)", "NOT cleared (-7.18 dB)", "untrained (= copy-last)"
    sfonet: str | None = None           # "cleared", "NOT cleared (allowed)"; None: no SFO-Net taught it


@dataclass(frozen=True)
class Entry:
    """One evaluation (one seed): AUCs in [0, 1] or None; ``path`` is its metrics.json."""

    dataset: str
    arch: str
    method: str
    protocol: str
    shots: int
    seed: int | None
    aucs: dict[str, float | None]
    path: str
    data: EvalData | None = None    # what the AUCs were computed on
    group: str = ""         # a label of ``data`` when rows are grouped by it (--group-by-data)
    floors: Floors = Floors()

    @property
    def row(self) -> tuple[str, str, str, str]:
        return self.dataset + self.group, self.arch, self.method, self.protocol


def collect(paths: Iterable[str | Path]) -> list[Entry]:
    """Every evaluate-predictor ``metrics.json`` at or under ``paths`` (each read once), as entries."""
    files: dict[Path, None] = {}
    for path in map(Path, paths):
        found = [path] if path.is_file() else sorted(path.rglob("metrics.json"))
        files.update((f.resolve(), None) for f in found)
    entries = []
    for file in files:
        try:
            metrics = json.loads(file.read_text())
        except (OSError, ValueError) as err:
            log.warning("%s: skipped, not readable JSON (%s)", file, err)
            continue
        if metrics.get("kind") != "predictor-evaluation":
            log.info("%s: skipped, not an evaluate-predictor metrics.json", file)
            continue
        entries.append(_entry(file, metrics))
    return entries


REQUIRED = ("dataset", "arch", "run", *(v for k, v in METRICS.items() if k not in OPTIONAL))  # in every metrics.json
REQUIRED_RUN = ("method", "shots", "protocol", "seed")        # and its run, when it is a fine-tune


def _entry(file: Path, metrics: dict) -> Entry:
    """The entry of one metrics.json; DataError naming the file and the keys it lacks (a row of "?" is no row)."""
    from pipeline.core.errors import DataError

    missing = [k for k in REQUIRED if k not in metrics]
    run = metrics.get("run")
    if isinstance(run, dict) and run.get("known"):
        missing += [f"run.{k}" for k in REQUIRED_RUN if k not in run]
    elif run is not None and not isinstance(run, dict):
        missing.append("run (an object)")
    if missing or not metrics.get("arch"):
        raise DataError(file, f"an evaluate-predictor metrics.json without {', '.join(missing) or 'an arch'}; "
                              f"rerun evaluate-predictor for it")
    run = run or {}
    arch = metrics["arch"]
    shots = run.get("shots") if run.get("known") else 0
    method = run.get("method") or PRETRAINED        # run-experiment names the method (--method)
    data = EvalData(metrics.get("root"), (metrics.get("ground_truth") or {}).get("sha256"),
                    tuple(metrics.get("eval_size") or ()), tuple(metrics.get("videos") or ()),
                    _source_predictor(metrics))
    return Entry(dataset=metrics.get("title") or metrics.get("dataset", "?"), arch=ARCH_NAMES.get(arch, arch),
                 method=method or PRETRAINED, protocol=run.get("protocol") or "-", shots=int(shots or 0),
                 seed=run.get("seed"), aucs={k: metrics.get(key) for k, key in METRICS.items()}, path=str(file),
                 data=data, floors=_floors(metrics))


def _floors(metrics: dict) -> Floors:
    """The :class:`Floors` of one metrics.json: its own copy-last floor, and the learners' verdicts read from the
    files it names (the fine-tune's finetune.json, the pre-trained predictor's metrics.json); a file that is gone
    leaves its verdict unknown (None)."""
    floor = metrics.get("floor") or {}
    run = metrics.get("run") or {}
    finetune = _read_json(run.get("finetune_json")) if run.get("known") else None
    source = ((finetune or {}).get("config") or {}).get("predictor") if finetune else \
        (metrics.get("predictor") or {}).get("path")
    gate = (finetune or {}).get("sfonet_gate")
    sfonet = None
    if gate:
        sfonet = "cleared" if gate.get("cleared") else "NOT cleared" + (" (allowed)" if gate.get("allowed_weak") else "")
    return Floors(copy_last=metrics.get("copy_last_frame_auc"), above_copy_last=floor.get("cleared"),
                  predictor=_predictor_verdict(source), sfonet=sfonet)


@functools.lru_cache(maxsize=None)     # every seed and K of a method names the same pre-trained predictor
def _predictor_verdict(predictor: str | None) -> str | None:
    """train-predictor's floor verdict for the predictor file ``predictor`` (its metrics.json beside it), short."""
    trained = _read_json(Path(predictor).parent / "metrics.json") if predictor else None
    floor = (trained or {}).get("floor") or {}
    if trained is not None and trained.get("steps") == 0:
        return "untrained (= copy-last)"
    if floor.get("cleared") is None or floor.get("margin") is None:
        return None
    return f"{'cleared' if floor['cleared'] else 'NOT cleared'} ({floor['margin']:+.2f} dB)"


def _read_json(path) -> dict | None:
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, ValueError, TypeError):
        return None
    return value if isinstance(value, dict) else None


def _source_predictor(metrics: dict) -> str | None:
    """The sha256 of the pre-trained predictor an evaluation comes from: the fine-tune run's source (its
    finetune.json), or the evaluated file itself for a K = 0 evaluation."""
    run = metrics.get("run") or {}
    if run.get("known") and run.get("finetune_json"):
        try:
            return json.loads(Path(run["finetune_json"]).read_text()).get("predictor_sha256")
        except (OSError, ValueError):
            return None
    return (metrics.get("predictor") or {}).get("sha256")


def check_poolable(entries: Sequence[Entry]) -> None:
    """DataError unless every row's evaluations were computed on the same :class:`EvalData`: one data root,
    labels, size and video list for each dataset and architecture, and one pre-trained predictor for each method
    (all its K and seeds, with the shared K = 0 where the method has no K = 0 of its own: methods may pre-train
    their own models). The one file of each side is named with the first difference."""
    from pipeline.core.errors import DataError

    def compare(group: list[Entry], fields: tuple[str, ...]) -> None:
        first = group[0]
        for other in group[1:]:
            name = next((n for n in fields if getattr(first.data, n) != getattr(other.data, n)), None)
            if name is None:
                continue
            a, b = getattr(first.data, name), getattr(other.data, name)
            if name == "videos":
                a, b = f"{len(a)} videos ({', '.join(a[:4])}...)", f"{len(b)} videos ({', '.join(b[:4])}...)"
            raise DataError(other.path, f"would be pooled with {first.path}, but the {DATA_FIELDS[name]} differs "
                                        f"({b} here, {a} there); give results-table one experiment, or pass "
                                        "--group-by-data for a row per data")

    data_fields = tuple(f for f in EvalData._fields if f != "source_predictor")
    by_data: dict[tuple, list[Entry]] = {}
    by_method: dict[tuple, list[Entry]] = {}
    for e in entries:
        by_data.setdefault(e.row[:2], []).append(e)
        by_method.setdefault(e.row[:3], []).append(e)
    for group in by_data.values():
        compare(group, data_fields)
    for (dataset, arch, method), group in by_method.items():
        own_k0 = any(e.shots == 0 for e in group)
        shared = [] if own_k0 or method == PRETRAINED else by_method.get((dataset, arch, PRETRAINED), [])
        compare([*shared, *group], ("source_predictor",))


def group_by_data(entries: Sequence[Entry]) -> list[Entry]:
    """The entries with a label of their data in the row name where a dataset was evaluated on several."""
    from dataclasses import replace

    keys: dict[str, list[tuple]] = {}
    for e in entries:
        if e.data not in keys.setdefault(e.dataset, []):
            keys[e.dataset].append(e.data)
    out = []
    for e in entries:
        if len(keys[e.dataset]) == 1:
            out.append(e)
            continue
        d = e.data
        label = (f" [{Path(d.root or '?').name}, {'x'.join(map(str, d.eval_size))}, {len(d.videos)} videos, gt "
                 f"{str(d.gt_sha256)[:8]}, from predictor {str(d.source_predictor)[:8]}]")
        out.append(replace(e, group=label))
    return out


def cell(values: Sequence[float], *, mark: str = "") -> str:
    """AUCs in [0, 1] -> "mean ± std (n=N)" in % with two decimals (std with ddof = 1); one value: "91.10 (n=1)";
    none: "–"."""
    if not values:
        return "–"
    percent = 100 * np.asarray(values, dtype=np.float64)
    text = f"{percent.mean():.2f}"
    if len(percent) > 1:
        text += f" ± {percent.std(ddof=1):.2f}"
    return f"{text} (n={len(percent)}){mark}"


def _values(entries: Iterable[Entry], metric: str) -> list[float]:
    return [e.aucs[metric] for e in entries if e.aucs.get(metric) is not None]


def table_rows(entries: Sequence[Entry], *, shots: Sequence[int] | None = None,
               metrics: Sequence[str] = ("frame",)) -> tuple[list[str], list[list[str]], bool]:
    """(headers, rows of cells, whether a shared K = 0 cell appears): rows sorted by dataset, architecture,
    method (pre-trained first) and protocol; columns K for each metric."""
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric {', '.join(unknown)} (choose from {', '.join(METRICS)})")
    shots = list(shots) if shots else sorted({e.shots for e in entries} | ({0} if entries else set()))
    groups: dict[tuple, dict[int, list[Entry]]] = {}
    for e in entries:
        groups.setdefault(e.row, {}).setdefault(e.shots, []).append(e)
    # a method's own pre-trained model (K = 0, no protocol) is the K = 0 cell of that method's rows
    own_k0 = {key[:3]: groups.pop(key) for key in list(groups) if key[2] != PRETRAINED and key[3] == "-"
              and any(k[:3] == key[:3] and k[3] != "-" for k in groups)}
    order = sorted(groups, key=lambda r: (r[0], r[1], r[2] != PRETRAINED, r[2], r[3]))
    headers = ["Target", "Method", "Protocol"]
    headers += [("" if m == "frame" else f"{m} ") + f"K={k}" for m in metrics for k in shots]
    headers += ["Copy-last", "Floors"]
    rows, shared = [], False
    for key in order:
        dataset, arch, method, protocol = key
        cells = [dataset, arch if method == arch else f"{arch} {method}", protocol]     # "MPN", not "MPN MPN"
        own = {k: groups[key].get(k, []) or (own_k0.get(key[:3], {}).get(k, []) if k == 0 else []) for k in shots}
        for metric in metrics:
            for k in shots:
                found = own[k]
                mark = ""
                if not found and k == 0 and method != PRETRAINED:
                    found = groups.get((dataset, arch, PRETRAINED, "-"), {}).get(0, [])
                    mark = SHARED_K0 if found else ""
                    shared |= bool(found)
                cells.append(cell(_values(found, metric), mark=mark))
        evaluated = [e for k in shots for e in own[k]]
        rows.append(cells + [copy_last_cell(evaluated), floors_cell(evaluated)])
    return headers, rows, shared


def copy_last_cell(entries: Sequence[Entry]) -> str:
    """The copy-last frame AUC (%) on the frames of a row's evaluations: one value, or the range where they were
    scored on different frames (per-video adaptation leaves different frames out); "–" when none recorded it."""
    values = sorted({round(100 * e.floors.copy_last, 2) for e in entries if e.floors.copy_last is not None})
    if not values:
        return "–"
    return f"{values[0]:.2f}" if len(values) == 1 else f"{values[0]:.2f}–{values[-1]:.2f}"


def floors_cell(entries: Sequence[Entry]) -> str:
    """Whether a row's learners cleared their floors, in words: the pre-trained predictor (train-predictor's
    held-out verdict), the SFO-Net that taught it (the gate's), and how many of its evaluations beat copy-last."""
    parts = []
    for name, values in (("predictor", {e.floors.predictor for e in entries}),
                         ("SFO-Net", {e.floors.sfonet for e in entries})):
        known = sorted(v for v in values if v)
        if known:
            parts.append(f"{name} {' / '.join(known)}")
    judged = [e.floors.above_copy_last for e in entries if e.floors.above_copy_last is not None]
    if judged:
        parts.append(f"above copy-last in {sum(judged)} of {len(judged)}")
    return "; ".join(parts) or "–"


def markdown_table(entries: Sequence[Entry], *, shots: Sequence[int] | None = None,
                   metrics: Sequence[str] = ("frame",), withheld: Sequence[str] = ()) -> str:
    """The Markdown table (plus a caption line and notes) of :func:`table_rows`; ``withheld``: one line per row
    that was not run, saying why (:func:`withheld_lines`)."""
    headers, rows, shared = table_rows(entries, shots=shots, metrics=metrics)
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    names = {"frame": "pooled frame-level AUC", "per-video": "per-video mean AUC", "pixel": "pixel-level AUC",
             "raw": "frame-level AUC of raw PSNR (no normalisation)",
             "calibrated": "frame-level AUC of the calibrated score",
             "combined": "frame-level AUC of MPN's combined score (PSNR with the prototype distance S_fea; – for "
                         "the models without S_fea)"}
    notes = [f"AUC (%), mean ± std over seeds (n runs): {', '.join(names[m] for m in metrics)}. "
             f"K = 0: the pre-trained predictor, no fine-tuning."]
    if shared:
        notes.append(f"{SHARED_K0} K = 0 of the pre-trained predictor of the same architecture and dataset.")
    notes.append("Copy-last: the frame AUC of copying the last frame on the same frames (the floor a predictor must "
                 "beat). Floors: the pre-trained predictor's held-out verdict (PSNR margin over copy-last, +0.5 dB "
                 "needed), the teaching SFO-Net's (the SOFF gate), and how many of the row's evaluations beat "
                 "copy-last.")
    notes += [f"Withheld: {line}" for line in withheld]
    return "\n".join(lines) + "\n\n" + "\n".join(notes) + "\n"


def withheld_lines(records: Iterable[str | Path]) -> list[str]:
    """One line for each gate record (``soff gate --record``) that refused its SFO-Net: the rows behind it were
    withheld. A record not written (the gate never ran) is said too; one that let its SFO-Net teach says nothing."""
    lines = []
    for path in records:
        record = _read_json(path)
        if record is None:
            lines.append(f"{path}: no readable gate record (the gate did not run); rows behind it may be missing")
        elif record.get("refused"):
            why = record.get("summary") or record.get("reason") or "refused"
            lines.append(f"the SOFF rows: the gate refused {why} (the reason: {path})")
    return lines
