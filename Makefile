# The README's two commands:  `make demo` (the main job) and `make test` (the test suite).
# Each builds .venv on first use; later calls skip the set-up unless setup.cfg or pyproject.toml changed.
PYTHON   ?= python3
VENV     := .venv
BIN      := $(VENV)/bin
STAMP    := $(VENV)/.installed
DATASETS ?= ../shared/datasets
# torch and torchvision pinned to the pair that installs from this machine's local wheels and imports
# beside ultralytics (see README, "Set-up").
TORCH    := torch==2.14.1 torchvision==0.29.1

.PHONY: demo experiment experiment-gpu test venv clean

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "setting up $(VENV) (first run installs torch: about 2 minutes)"
	@$(BIN)/pip install --disable-pip-version-check $(TORCH) >$(VENV)/pip.log 2>&1 \
	  && $(BIN)/pip install --disable-pip-version-check $(TORCH) -e '.[dev]' >>$(VENV)/pip.log 2>&1 \
	  || { tail -n 25 $(VENV)/pip.log; \
	       if grep -q 'No space left on device' $(VENV)/pip.log; then \
	         echo "set-up failed: the disk holding $(VENV) is full ($$(df -h --output=avail $(VENV) | tail -n 1 | tr -d ' ') free;" \
	              "torch with its CUDA libraries needs about 6.5 GB): free some space and run make again"; fi; \
	       echo "set-up failed: full log in $(VENV)/pip.log"; exit 1; }
	@$(BIN)/python -c "import torch, torchvision, cv2, h5py, click, pytest, pipeline" \
	  || { echo "set-up failed: the packages above do not import"; exit 1; }
	@touch $(STAMP)

DEMO_OUT ?= demo-out

# The main job on real data, the whole SOFF chain at demo size (a few minutes on 2 CPU cores; a rerun resumes):
# check both datasets, then run-experiment --source ped1 --target ped2 --preset demo: make-labels on 6 Ped1 training videos with
# the weight-free teachers on the embedded dask cluster, train-sfonet (three stages), train-predictor (unet3),
# K = 0 / 1 / 10 fine-tuning on Ped2 with the standard and the SOFF loss (the demo's 10-step SFO-Net does not clear
# its floors, so the SOFF gate withholds the SOFF rows and says why), evaluate-predictor on Ped2 test videos
# 01 and 12, and the K-shot table (printed, and in $(DEMO_OUT)/ped1_to_ped2/results.md). Then the label store
# is verified and one pair drawn, and Ped2 test video 02 is scored as a user's video would be (score-video: no
# labels, calibrated on the Ped2 training videos the fine-tune did not use): its spans.json, curve.png, overlay.mp4.
demo: $(STAMP)
	$(BIN)/verify-data $(DATASETS)/ped2 --dataset ped2
	$(BIN)/verify-data $(DATASETS)/ped1 --dataset ped1 --split training
	$(BIN)/run-experiment --source ped1 --target ped2 --preset demo --out $(DEMO_OUT)/ped1_to_ped2 --datasets $(DATASETS)
	$(BIN)/inspect-labels $(DEMO_OUT)/ped1_to_ped2/labels/ped1-training --verify --render 01:60 \
	    --out $(DEMO_OUT)/ped1-01-pair60.png
	$(BIN)/score-video $(DATASETS)/ped2/testing/frames/02 --out $(DEMO_OUT)/score-video \
	    --predictor $(DEMO_OUT)/ped1_to_ped2/ft/main/unet3-standard-k10-s0/seed0 --calibration-frames 1000 --device cpu

# The paper's experiment at half its side (issues 12 and 19): `make experiment` runs the cpu preset (128x128
# training, 128x86 Ped2 evaluation, the learners that clear their floors: docs/learning.md) and writes
# docs/results.md from it: first SFO-Net and the predictor (14 and 20 CPU-minutes measured, side by side), then the
# Ped2 -> Ped2 anchor (its predictor with both cores, no fine-tuning), then the fine-tuning schedule checked on
# held-out Ped2 *training* videos (the chain's adaptations then use the chosen one: validation/schedule.json), then
# the whole chain with the scratch control and K = all beside standard and SOFF; `make experiment-gpu` runs the paper's sizes on a GPU. Measured times: docs/results.md.
EXP := runs/ped1_to_ped2-cpu
experiment: $(STAMP)
	$(BIN)/verify-data $(DATASETS)/ped2 --dataset ped2
	$(BIN)/verify-data $(DATASETS)/ped1 --dataset ped1 --split training
	$(BIN)/run-experiment --source ped1 --target ped2 --preset cpu --out $(EXP) --datasets $(DATASETS) \
	    --only sfonet-three-stage,predictor-unet3
	$(BIN)/run-experiment --source ped2 --target ped2 --preset cpu --out runs/ped2_to_ped2-cpu --datasets $(DATASETS) \
	    --only eval-unet3-k0 --jobs 1
	$(BIN)/soff validation schedule $(EXP) --grid 50:2e-4,50:1e-3,100:2e-4,100:2e-4:decoder --shots 10 --seeds 0
	$(BIN)/run-experiment --source ped1 --target ped2 --preset cpu --out $(EXP) --datasets $(DATASETS) \
	    --methods standard,soff,scratch
	$(BIN)/soff results-page $(EXP) --out docs/results.md --notes docs/results-notes.md \
	    --anchor runs/ped2_to_ped2-cpu --previous docs/results-128-paper.md

experiment-gpu: $(STAMP)
	$(BIN)/verify-data $(DATASETS)/ped2 --dataset ped2
	$(BIN)/verify-data $(DATASETS)/ped1 --dataset ped1 --split training
	$(BIN)/run-experiment --source ped1 --target ped2 --preset gpu --out runs/ped1_to_ped2-gpu --datasets $(DATASETS)
	$(BIN)/soff results-page runs/ped1_to_ped2-gpu --out docs/results-gpu.md

test: $(STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
