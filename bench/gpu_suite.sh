#!/usr/bin/env bash
# The one script a lent GPU runs first (issue 12): the throughput measurements, then the experiment at the paper's
# sizes with as much of the schedule as fits, everything under one folder to bring back.
#
#   bash bench/gpu_suite.sh OUT                       # on the device machine: DEVICE=cuda, the gpu-slot preset
#   SCALE=tiny DEVICE=cpu bash bench/gpu_suite.sh OUT # the same code path at a tiny size (tests run this on the CPU)
#
# Environment: DEVICE (cuda), SCALE (full | tiny), DATASETS (../shared/datasets), BUDGET_S (seconds for the
# experiment, 420 at full scale), PYTHON (the venv's python). A rerun resumes the experiment where it stopped.
# Exit status: the number of parts that failed (an experiment stopped by its budget is not a failure).
set -uo pipefail
out=${1:?usage: bench/gpu_suite.sh OUT}
device=${DEVICE:-cuda}; scale=${SCALE:-full}
here=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$here/.venv/bin/python}
bin=$(dirname "$python")
datasets=${DATASETS:-$here/../shared/datasets}
mkdir -p "$out"; out=$(cd "$out" && pwd)
log() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$out/suite.log"; }
start=$SECONDS
failures=0

if [ "$scale" = tiny ]; then
    bench_args=(--size 32x32 --batch 2 --repeats 1 --matmul 256 --precisions fp32)
    preset=tiny; budget=${BUDGET_S:-600}
else
    bench_args=(--size 256x256 --batch 16 --repeats 10 --matmul 8192 --precisions fp32,bf16,fp16)
    preset=gpu-slot; budget=${BUDGET_S:-420}
fi

log "gpu_suite: device $device, scale $scale, preset $preset, experiment budget ${budget}s, out $out"
{ nvidia-smi -L 2>/dev/null || echo "no nvidia-smi"
  "$python" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'devices',
[torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())])"; nproc; } > "$out/device.txt" 2>&1

log "1/2 precision and throughput (bench/precision.py ${bench_args[*]})"
"$python" "$here/bench/precision.py" --device "$device" "${bench_args[@]}" > "$out/precision.md" 2> "$out/precision.err" \
    || { log "bench/precision.py failed (see precision.err)"; failures=$((failures + 1)); }

log "2/2 run-experiment --source ped1 --target ped2 --preset $preset (at most ${budget}s)"
timeout --signal=TERM "$budget" "$bin/run-experiment" --source ped1 --target ped2 --preset "$preset" \
    --device "$device" --datasets "$datasets" --out "$out/experiment" > "$out/experiment.log" 2>&1
rc=$?
[ "$rc" -eq 124 ] && log "experiment stopped at its budget; rerun the same command to resume"
if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ]; then log "experiment exited $rc (see experiment.log)"; failures=$((failures + 1)); fi
"$bin/soff" results-page "$out/experiment" --out "$out/results.md" > /dev/null 2>> "$out/suite.log" \
    || { log "results page not written"; failures=$((failures + 1)); }
log "done in $((SECONDS - start)) s, $failures failure(s)"
exit "$failures"
