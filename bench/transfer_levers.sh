#!/bin/sh
# The pre-training levers of docs/transfer.md, side by side: each variant is the cpu preset's train-predictor
# (residual output, 64x64 crops of 128x128 frames, 800 steps of batch 32, Adam 1e-3 cosine, Ped1 video 34 held
# out) with one lever changed. For each variant:
#   1. held-out choice: mean PSNR against copy-last on Ped2 *training* videos 13-16 (normal frames only; the
#      schedule check's held-out quarter), at Ped2's evaluation size 128x86 -> heldout-ped2.json;
#   2. report: evaluate-predictor on every Ped2 test video at 128x86 (K = 0) -> eval-k0/metrics.json.
# Usage: sh bench/transfer_levers.sh VARIANT [VARIANT ...]   (variants below; each resumes where it stopped)
# Threads: OMP_NUM_THREADS (run two variants at once with 1 each on a 2-core machine).
set -e
BIN=${BIN:-.venv/bin}
DATA=${DATASETS:-../shared/datasets}
OUT=${OUT:-runs/levers}
PED1_TRAIN=$(seq -s, -f %02g 1 33)
COMMON="--arch unet3 --recipe cpu --steps 800 --input-size 128x128 --val-max-clips 64 --workers 0 --device cpu
        --eval-every 100 --resume"

variant() {
    name=$1; shift
    mkdir -p "$OUT/$name"
    # shellcheck disable=SC2086
    "$BIN/train-predictor" --out "$OUT/$name/pretrain" $COMMON "$@"      # a variant's options win
    "$BIN/soff" validation score --data-root "$DATA/ped2" --predictor "$OUT/$name/pretrain/predictor.pt" \
        --videos 13,14,15,16 --size 128x86 --out "$OUT/$name/heldout-ped2.json"
    "$BIN/evaluate-predictor" "$DATA/ped2" --dataset ped2 --predictor "$OUT/$name/pretrain/predictor.pt" \
        --eval-size 128x86 --out "$OUT/$name/eval-k0" --device cpu --no-plots --pixel-samples 1024
}

MULTI_TRAIN="$(echo "$PED1_TRAIN" | sed 's/\([0-9][0-9]\)/ped1\/\1/g'),$(ls "$DATA/multiscene/training" | sed 's/\.mp4$//; s/^/multiscene\//' | paste -sd,)"

for v in "$@"; do
    case "$v" in
        ped1)          variant ped1 "$DATA/ped1" --dataset ped1 --videos "$PED1_TRAIN" --val-videos 34 ;;
        ped1-aug)      variant ped1-aug "$DATA/ped1" --dataset ped1 --videos "$PED1_TRAIN" --val-videos 34 \
                           --augment scale,flip,photometric,speed ;;
        multi)         variant multi "$DATA/ped1" "$DATA/multiscene" --dataset ped1,multiscene --balance scenes \
                           --videos "$MULTI_TRAIN" --val-videos ped1/34 ;;
        multi-aug)     variant multi-aug "$DATA/ped1" "$DATA/multiscene" --dataset ped1,multiscene --balance scenes \
                           --videos "$MULTI_TRAIN" --val-videos ped1/34 --augment scale,flip,photometric,speed ;;
        # the frames at the aspect of the evaluation (128x86: walkers as tall as on Ped2's 128x86 test frames)
        ped1-86)       variant ped1-86 "$DATA/ped1" --dataset ped1 --videos "$PED1_TRAIN" --val-videos 34 \
                           --input-size 128x86 ;;
        multi-86)      variant multi-86 "$DATA/ped1" "$DATA/multiscene" --dataset ped1,multiscene --balance scenes \
                           --videos "$MULTI_TRAIN" --val-videos ped1/34 --input-size 128x86 ;;
        *) echo "unknown variant $v (ped1, ped1-aug, multi, multi-aug, ped1-86, multi-86)" >&2; exit 2 ;;
    esac
done
