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

.PHONY: demo test venv clean

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "setting up $(VENV) (first run installs torch: about 2 minutes)"
	@$(BIN)/pip install --disable-pip-version-check $(TORCH) >$(VENV)/pip.log 2>&1 \
	  && $(BIN)/pip install --disable-pip-version-check $(TORCH) -e '.[dev]' >>$(VENV)/pip.log 2>&1 \
	  || { tail -n 25 $(VENV)/pip.log; echo "set-up failed: full log in $(VENV)/pip.log"; exit 1; }
	@$(BIN)/python -c "import torch, torchvision, cv2, h5py, click, pytest, pipeline" \
	  || { echo "set-up failed: the packages above do not import"; exit 1; }
	@touch $(STAMP)

DEMO_OUT ?= demo-out

# The main job on real data: check Ped2, label every training frame pair with the weight-free teachers on the
# embedded dask cluster (a rerun resumes), verify the store and draw one pair, then train SFO-Net's three stages
# from the store at a tiny size (video 01 held out; a rerun resumes or says the run is finished).
demo: $(STAMP)
	$(BIN)/verify-data $(DATASETS)/ped2 --dataset ped2
	$(BIN)/make-labels $(DATASETS)/ped2 --dataset ped2 --split training --out $(DEMO_OUT)/ped2-training-labels \
	    --flow-teacher dis --seg-teacher bgsub
	$(BIN)/inspect-labels $(DEMO_OUT)/ped2-training-labels --verify --render 01:60 --out $(DEMO_OUT)/ped2-01-pair60.png
	$(BIN)/train-sfonet $(DEMO_OUT)/ped2-training-labels --out $(DEMO_OUT)/sfonet-run --val-videos 01 \
	    --input-size 64x64 --steps 25 --batch-size 8 --val-max-pairs 32 --resume

test: $(STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
