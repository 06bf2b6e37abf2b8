"""The floor a frame predictor must beat: frame AUC when the "prediction" is the last past frame (PSNR between
frame t-1 and frame t, through evaluate-predictor's own reading, PSNR and min-max scoring code).

    .venv/bin/python bench/copy_last_auc.py ../shared/datasets/ped2 --dataset ped2 --eval-size 128x86 \
        --out runs/ped2_to_ped2-cpu/copy_last.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


class CopyLast(torch.nn.Module):
    """Predicts frame t as frame t-1: the last 3 channels of the (B, past * 3, h, w) input."""

    past_frames = 4

    def forward(self, past: torch.Tensor) -> torch.Tensor:
        return past[:, -3:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--split", default="testing")
    parser.add_argument("--eval-size", default="128x86", help="WxH")
    parser.add_argument("--out", type=Path, default=None, help="Also write the AUCs to this JSON file.")
    args = parser.parse_args()
    from pipeline.data.frame_source import open_frame_source
    from pipeline.data.manifests import load_manifest
    from train.evaluation import scoring
    from train.evaluation.predict import predict_video
    from train.evaluation.targets import frame_labels

    w, h = map(int, args.eval_size.split("x"))
    source = open_frame_source(args.root, args.split)
    counts = {v: source.num_frames(v) for v in source.videos()}
    gt = frame_labels(args.root, load_manifest(args.dataset), args.split, counts)
    psnr = {v: predict_video(CopyLast(), source, v, size=(w, h), batch_size=32, device=torch.device("cpu")).psnr
            for v in counts}
    scored = scoring.score_videos(psnr, gt.labels, past_frames=CopyLast.past_frames)
    result = {"kind": "copy-last-frame-baseline", "dataset": args.dataset, "split": args.split, "eval_size": [w, h],
              "frame_auc": scoring.frame_auc(scored), "per_video_mean_auc": scoring.per_video_auc(scored).mean,
              "ground_truth": str(gt.path), "ground_truth_sha256": gt.sha256, "videos": list(counts)}
    print(f"{args.dataset} {args.split} at {w}x{h}, copy-last-frame predictor: pooled frame AUC "
          f"{100 * result['frame_auc']:.2f}%, per-video mean AUC {100 * result['per_video_mean_auc']:.2f}% ({gt.path})")
    if args.out:
        from pipeline.core.files import atomic_write_text

        atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
