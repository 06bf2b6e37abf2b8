#!/usr/bin/env bash
# One GPU session's measurements, as run on the lent machine (see docs/benchmarks.md):
#   bash bench/gpu_run.sh DATA_ROOT OUT
# DATA_ROOT holds Ped2 in the frames layout (a few training videos are enough); OUT receives the tables,
# a store summary and a rendered pair. Weights are random (bench/random_weights.py): speeds only.
set -euo pipefail
data=$1; out=$2
ml() { python3 -c 'import sys; from pipeline.make_labels.cli import make_labels_command as c; sys.argv[0] = "make-labels"; c()' "$@"; }
il() { python3 -c 'import sys; from pipeline.store.cli import inspect_labels_command as c; sys.argv[0] = "inspect-labels"; c()' "$@"; }
nvidia-smi -L | tee "$out/device.txt"
python3 bench/random_weights.py /tmp/weights --yolo yolov8l
python3 bench/teachers.py --weights /tmp/weights --device cuda --frames "$data/training/frames/01" | tee "$out/teachers.md"
start=$(date +%s)
ml "$data" --dataset ped2 --split training --videos 01,02,03,04 --out /tmp/store --flow-teacher gma \
   --seg-teacher yolo-mobilesam --weights-dir /tmp/weights --gpus 1 --shard-pairs 64 --batch-size 16 \
   --seg-option conf=0.05 | tee "$out/make_labels.txt"
echo "wall seconds (cluster start-up, teacher loading and labelling): $(( $(date +%s) - start ))" | tee -a "$out/make_labels.txt"
il /tmp/store --verify --render 01:60 --out "$out/gpu-pair.png" | tee "$out/inspect.txt"
