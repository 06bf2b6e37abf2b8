"""The paper's experiment on real data: UCSD Ped1 (source) -> UCSD Ped2 (target), K-shot table and ablations.

One command runs the whole chain from scratch into one results folder:

1. ``make-labels`` on Ped1 training with the weight-free teachers (DIS flow, MOG2 background subtraction; no
   pretrained teacher weights exist on the development machines),
2. ``train-sfonet``: the three-stage SFO-Net, and for the ablations the SFO-Net without OSF (components
   flow,seg), the one-stage and the two-stage one,
3. ``train-predictor`` on Ped1 training (unet3, and unet4 in the gpu preset),
4. on Ped2: K = 0 (the pre-trained predictor), and for each K in the preset ``finetune-predictor`` (scene
   protocol) with ``--loss standard`` and ``--loss soff`` over the preset's seeds, each evaluated on Ped2 testing
   by ``evaluate-predictor``,
5. at K = 1 and 10 the ablations of the paper's Table 3 (flow only, segmentation only, both without OSF, full)
   and Table 4 (one-, two-, three-stage SFO-Net),
6. ``results-table`` over the main evaluations (printed and written to ``results.md``).

Resumable: a rerun skips every step whose last record in ``steps.jsonl`` finished with exit status 0 under the
same command line (and whose output exists); an interrupted step is rerun (train-sfonet and train-predictor
with ``--resume``, finetune-predictor keeps finished seeds). Every step's command line, wall time and exit
status go to ``steps.jsonl``; ``commands.sh`` lists the command lines; ``logs/<step>.log`` holds each output.

Independent steps run as parallel subprocesses (``--jobs N``), each with torch limited to cores / N threads
(OMP_NUM_THREADS, MKL_NUM_THREADS).

    .venv/bin/python experiments/ped1_to_ped2.py --preset demo
    .venv/bin/python experiments/ped1_to_ped2.py --preset cpu --out runs/ped1_to_ped2-cpu --jobs 2
    .venv/bin/python experiments/ped1_to_ped2.py --preset gpu --device cuda --jobs 1
"""
from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import click

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent            # the venv's console scripts live beside its python
STEPS_FILE, COMMANDS_FILE, PRESET_FILE = "steps.jsonl", "commands.sh", "preset.json"


@dataclass(frozen=True)
class Preset:
    """Sizes and schedules of one run of the chain. ``reduced`` says, in words, what differs from the paper."""

    name: str
    description: str
    reduced: str
    ped1_videos: str | None = None          # comma list; None: all 34 training videos
    label_size: str = "72x48"
    sfonet_steps: int = 100
    sfonet_batch: int = 8
    sfonet_val_video: str | None = "34"
    sfonet_val_pairs: int = 64
    archs: tuple[str, ...] = ("unet3",)
    input_size: str = "72x48"               # predictor training and fine-tuning size
    predictor_steps: int = 400
    predictor_batch: int = 8
    predictor_val_video: str | None = "34"
    predictor_val_clips: int = 64
    shots: tuple[int, ...] = (0, 1, 10)
    seeds: tuple[int, ...] = (0, 1, 2)
    finetune_steps: int = 50
    finetune_lr: float = 2e-4
    finetune_batch: int = 4
    eval_size: str = "72x48"
    eval_videos: str | None = None          # comma list of Ped2 test videos; None: all 12
    pixel_samples: int = 1024
    ablation_shots: tuple[int, ...] = (1, 10)
    ablation_seeds: tuple[int, ...] = (0,)
    ablations: bool = True
    device: str = "cpu"
    jobs: int = 2
    loader_workers: int = 0                 # DataLoader processes of train-sfonet / train-predictor


PRESETS = {
    "tiny": Preset(
        name="tiny", description="CI test of the whole chain (about 1-2 minutes on 2 CPU cores)",
        reduced="2 Ped1 videos, 48x32 frames, 3 SFO-Net steps a stage, 5 predictor steps, K = 0 and 1, "
                "seed 0, 3 fine-tuning steps, 2 Ped2 test videos, no ablations: checks the chain, not the method",
        ped1_videos="01,02", label_size="48x32", sfonet_steps=3, sfonet_batch=4, sfonet_val_video="02",
        sfonet_val_pairs=8, input_size="48x32", predictor_steps=5, predictor_batch=4, predictor_val_video="02",
        predictor_val_clips=8, shots=(0, 1), seeds=(0,), finetune_steps=3, finetune_batch=1, eval_size="48x32",
        eval_videos="01,05", pixel_samples=256, ablations=False),
    "demo": Preset(
        name="demo", description="make demo: the whole chain in a few minutes on 2 CPU cores, one seed",
        reduced="6 Ped1 videos, 72x48 frames, 10 SFO-Net steps a stage, 40 predictor steps of batch 8, seed 0, "
                "20 fine-tuning steps, 2 of the 12 Ped2 test videos (01, 05), no ablations: shows the chain "
                "working, the numbers mean little",
        ped1_videos="01,02,03,04,05,06", sfonet_steps=10, sfonet_val_video="06", sfonet_val_pairs=16,
        predictor_steps=40, predictor_val_video="06", predictor_val_clips=16, seeds=(0,), finetune_steps=20,
        eval_videos="01,05", pixel_samples=512, ablations=False),
    "cpu": Preset(
        name="cpu",
        description="the experiment on 2 CPU cores, 2 jobs of 1 thread (measured: 47 minutes on an otherwise "
                    "idle 2-core machine; the issue's budget is 2.5 hours)",
        reduced="frames 72x48 instead of 256x256 (training) and 256x172 (Ped2 evaluation); SFO-Net 100 steps a "
                "stage of batch 8; predictor 400 steps of batch 8; fine-tuning 50 steps (batch 4, lr 2e-4); "
                "unet3 only; 3 seeds for the main table, 1 for the ablations; pixel AUC from 1,024 sampled "
                "pixels per frame; labels from the weight-free teachers",
        sfonet_steps=100, predictor_steps=400, finetune_steps=50, seeds=(0, 1, 2)),
    "gpu": Preset(
        name="gpu", description="the paper's sizes and schedules on one CUDA GPU (not run on the CPU machines)",
        reduced="nothing in size: the paper's 256x256 training and 256x172 Ped2 evaluation, unet3 and unet4, "
                "5 seeds (3 for the ablations), 8,192 sampled pixels per frame for the pixel AUC. What differs: "
                "the source is Ped1, not ShanghaiTech; the teachers are the weight-free ones unless --teachers "
                "auto finds GMA / YOLOv8 / MobileSAM weights in SOFF_WEIGHTS; the paper gives no step counts, so "
                "SFO-Net 5,000 steps a stage (batch 16), predictor 20,000 steps (batch 16, lr 2e-4, the paper's), "
                "fine-tuning 100 steps (lr 2e-4) are our choices. Not run on the CPU machines",
        label_size="256x256", sfonet_steps=5000, sfonet_batch=16, sfonet_val_pairs=256,
        archs=("unet3", "unet4"), input_size="256x256", predictor_steps=20000, predictor_batch=16,
        predictor_val_clips=256, seeds=(0, 1, 2, 3, 4), finetune_steps=100, eval_size="256x172",
        pixel_samples=8192, ablation_seeds=(0, 1, 2), device="cuda", jobs=1, loader_workers=4),
}

# Table 3 rows (ablation name -> (SFO-Net, --components)) and Table 4 rows (SFO-Net strategy).
SFONETS = {"three-stage": ["--strategy", "three-stage"],
           "no-osf": ["--strategy", "three-stage", "--components", "flow,seg"],
           "two-stage": ["--strategy", "two-stage"],
           "one-stage": ["--strategy", "one-stage"]}
TABLE3 = {"flow": ("three-stage", "flow"), "seg": ("three-stage", "seg"), "no-osf": ("no-osf", "flow,seg")}
TABLE4 = {"one-stage": "one-stage", "two-stage": "two-stage"}


@dataclass
class Step:
    """One command of the chain: ``done`` is a file it leaves when it succeeded, ``needs`` the steps before it."""

    name: str
    argv: list[str]
    done: str
    needs: list[str] = field(default_factory=list)
    exclusive: bool = False                  # uses every core itself (make-labels' dask workers)

    @property
    def command(self) -> str:
        return shlex.join(self.argv)


def _bin(name: str) -> str:
    return str(BIN / name)


def build_steps(p: Preset, data: Path, out: Path, teachers: str, cores: int) -> list[Step]:
    """Every step of the chain for preset ``p``, in priority order (main table first, then ablations)."""
    ped1, ped2 = str(data / "ped1"), str(data / "ped2")
    dev = ["--device", p.device]
    steps: list[Step] = []
    labels = out / "labels" / "ped1-training"
    flow_t, seg_t = ("dis", "bgsub") if teachers == "weight-free" else ("auto", "auto")
    argv = [_bin("make-labels"), ped1, "--dataset", "ped1", "--split", "training", "--out", str(labels),
            "--flow-teacher", flow_t, "--seg-teacher", seg_t, "--label-size", p.label_size]
    gpu_teachers = p.device != "cpu" and teachers == "auto"      # dis and bgsub are CPU teachers
    argv += ["--gpus", "1"] if gpu_teachers else ["--workers", str(max(1, min(cores, 2 if p.device == "cpu" else 8)))]
    if p.ped1_videos:
        argv += ["--videos", p.ped1_videos]
    steps.append(Step("labels", argv, str(labels / "manifest.json"), exclusive=True))

    def sfonet(s: str) -> Step:
        run = out / "sfonet" / s
        argv = [_bin("train-sfonet"), str(labels), "--out", str(run), *SFONETS[s], "--steps", str(p.sfonet_steps),
                "--batch-size", str(p.sfonet_batch), "--val-max-pairs", str(p.sfonet_val_pairs),
                "--workers", str(p.loader_workers),
                "--seed", "0", "--resume", *dev]
        if p.sfonet_val_video:
            argv += ["--val-videos", p.sfonet_val_video]
        return Step(f"sfonet-{s}", argv, str(run / "sfonet.pt"), ["labels"])

    steps.append(sfonet("three-stage"))

    for arch in p.archs:
        run = out / "predictor" / arch
        argv = [_bin("train-predictor"), ped1, "--dataset", "ped1", "--arch", arch, "--out", str(run),
                "--steps", str(p.predictor_steps), "--batch-size", str(p.predictor_batch),
                "--input-size", p.input_size, "--val-max-clips", str(p.predictor_val_clips),
                "--workers", str(p.loader_workers),
                "--seed", "0", "--resume", *dev]
        if p.ped1_videos:
            vids = [v for v in p.ped1_videos.split(",") if v != p.predictor_val_video]
            argv += ["--videos", ",".join(vids)]
        if p.predictor_val_video:
            argv += ["--val-videos", p.predictor_val_video]
        steps.append(Step(f"predictor-{arch}", argv, str(run / "predictor.pt")))

    def evaluate(name: str, predictor: str, folder: Path, needs: list[str], plots: bool) -> Step:
        argv = [_bin("evaluate-predictor"), ped2, "--dataset", "ped2", "--predictor", predictor,
                "--out", str(folder), "--eval-size", p.eval_size, "--pixel-samples", str(p.pixel_samples), *dev,
                "--plots" if plots else "--no-plots"]
        if p.eval_videos:
            argv += ["--videos", p.eval_videos]
        return Step(name, argv, str(folder / "metrics.json"), needs)

    def finetune(name: str, arch: str, loss: str, k: int, seed: int, folder: Path, sfonet: str | None,
                 components: str | None) -> Step:
        argv = [_bin("finetune-predictor"), ped2, "--dataset", "ped2",
                "--predictor", str(out / "predictor" / arch / "predictor.pt"), "--out", str(folder),
                "--loss", loss, "--shots", str(k), "--protocol", "scene", "--steps", str(p.finetune_steps),
                "--lr", str(p.finetune_lr), "--batch-size", str(min(p.finetune_batch, k)), "--seeds", str(seed),
                *dev]
        needs = [f"predictor-{arch}"]
        if loss == "soff":
            argv += ["--sfonet", str(out / "sfonet" / sfonet / "sfonet.pt"), "--components", components]
            needs.append(f"sfonet-{sfonet}")
        return Step(name, argv, str(folder / f"seed{seed}" / "adaptation.json"), needs)

    fine = [k for k in p.shots if k > 0]
    for arch in p.archs:
        steps.append(evaluate(f"eval-{arch}-k0", str(out / "predictor" / arch / "predictor.pt"),
                              out / "eval" / "main" / f"{arch}-k0", [f"predictor-{arch}"], plots=True))
    for seed in p.seeds:                      # seed by seed: an interrupted run still has whole seeds
        for arch in p.archs:
            for k in fine:
                for loss in ("standard", "soff"):
                    tag = f"{arch}-{loss}-k{k}-s{seed}"
                    steps.append(finetune(f"ft-{tag}", arch, loss, k, seed, out / "ft" / "main" / tag,
                                          "three-stage", "flow,seg"))
                    steps.append(evaluate(f"eval-{tag}", str(out / "ft" / "main" / tag / f"seed{seed}"),
                                          out / "eval" / "main" / tag, [f"ft-{tag}"], plots=seed == p.seeds[0]))
    if p.ablations:                           # after the main table: its steps go first when both are ready
        steps += [sfonet(s) for s in ("no-osf", "two-stage", "one-stage")]
        arch = p.archs[0]
        variants = {f"t3-{n}": v for n, v in TABLE3.items()}
        variants.update({f"t4-{n}": (s, "flow,seg") for n, s in TABLE4.items()})
        for seed in p.ablation_seeds:
            for k in p.ablation_shots:
                for name, (sfonet, components) in variants.items():
                    tag = f"{arch}-{name}-k{k}-s{seed}"
                    steps.append(finetune(f"ft-{tag}", arch, "soff", k, seed, out / "ft" / "ablation" / tag,
                                          sfonet, components))
                    steps.append(evaluate(f"eval-{tag}", str(out / "ft" / "ablation" / tag / f"seed{seed}"),
                                          out / "eval" / "ablation" / tag, [f"ft-{tag}"], plots=False))
    table = [_bin("results-table"), str(out / "eval" / "main"), "--shots", ",".join(map(str, p.shots)),
             "--metrics", "frame,per-video,pixel", "--out", str(out / "results.md")]
    steps.append(Step("results-table", table, str(out / "results.md"),
                      [s.name for s in steps if s.name.startswith("eval-") and "/main/" in s.done]))
    return steps


# --------------------------------------------------------------------------------------------------
# running


def _finished(out: Path) -> dict[str, dict]:
    """The last record of every step in steps.jsonl."""
    records: dict[str, dict] = {}
    path = out / STEPS_FILE
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                records[rec["step"]] = rec
    return records


def _is_done(step: Step, records: dict[str, dict]) -> bool:
    rec = records.get(step.name)
    return bool(rec and rec.get("rc") == 0 and rec.get("command") == step.command and Path(step.done).exists())


def _append(out: Path, record: dict) -> None:
    with open(out / STEPS_FILE, "a") as f:
        f.write(json.dumps(record) + "\n")


def run_steps(steps: list[Step], out: Path, jobs: int, cores: int, echo) -> int:
    """Run ``steps`` in their order as their dependencies finish, at most ``jobs`` at once (an exclusive step
    alone); returns the number of failed steps. Steps whose dependencies failed are not started."""
    records = _finished(out)
    threads = max(1, cores // jobs)
    done: set[str] = set()
    for s in steps:                           # in order: a step whose input is redone is redone too
        if _is_done(s, records) and all(n in done or n not in {t.name for t in steps} for n in s.needs):
            done.add(s.name)
    pending = [s for s in steps if s.name not in done]
    for s in steps:
        if s.name in done:
            echo(f"skip   {s.name} (finished earlier)")
    failed: set[str] = set()
    running: dict[str, tuple[subprocess.Popen, Step, float, object]] = {}
    (out / "logs").mkdir(exist_ok=True)
    try:
        _loop(pending, running, done, failed, out, jobs, cores, threads, echo)
    finally:                                  # interrupted (Ctrl-C, SIGTERM): stop the steps this run started
        for proc, _, _, log in running.values():
            proc.terminate()
            proc.wait()
            log.close()
    return len(failed)


def _loop(pending, running, done, failed, out, jobs, cores, threads, echo) -> None:
    while pending or running:
        for s in [s for s in pending if any(n in failed for n in s.needs)]:
            pending.remove(s)
            failed.add(s.name)
            echo(f"never  {s.name} (a step it needs failed)")
        exclusive_running = any(r[1].exclusive for r in running.values())
        for s in list(pending):
            if len(running) >= jobs or exclusive_running:
                break
            if not all(n in done for n in s.needs):
                continue
            if s.exclusive and running:
                continue
            n_threads = cores if s.exclusive else threads
            env = {**os.environ, "OMP_NUM_THREADS": str(n_threads), "MKL_NUM_THREADS": str(n_threads),
                   "PYTHONUNBUFFERED": "1"}
            log = open(out / "logs" / f"{s.name}.log", "a")
            log.write(f"$ {s.command}\n")
            log.flush()
            proc = subprocess.Popen(s.argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
            running[s.name] = (proc, s, time.time(), log)
            pending.remove(s)
            echo(f"start  {s.name} (pid {proc.pid}, {n_threads} thread{'s' if n_threads > 1 else ''})")
            if s.exclusive:
                break
        time.sleep(0.2)
        for name, (proc, s, t0, log) in list(running.items()):
            rc = proc.poll()
            if rc is None:
                continue
            log.close()
            seconds = round(time.time() - t0, 2)
            _append(out, {"step": name, "command": s.command, "rc": rc, "seconds": seconds,
                          "start": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0)),
                          "end": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                          "threads": cores if s.exclusive else threads})
            del running[name]
            if rc == 0:
                done.add(name)
                echo(f"done   {name} ({seconds:.1f} s)")
            else:
                failed.add(name)
                echo(f"FAILED {name} (exit {rc}; log {out / 'logs' / (name + '.log')})")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--preset", type=click.Choice(sorted(PRESETS)), default="demo", show_default=True,
              help="Sizes and schedules: tiny (CI, ~1.5 min), demo (make demo, a few minutes), cpu (~50 min on 2 "
                   "cores), gpu (the paper's sizes, CUDA).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Results folder (created; a rerun resumes). Default: runs/ped1_to_ped2-<preset>.")
@click.option("--datasets", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=REPO.parent / "shared" / "datasets", show_default=True,
              help="Folder holding ped1/ and ped2/ (env SOFF_DATASETS).", envvar="SOFF_DATASETS")
@click.option("--jobs", type=click.IntRange(min=1), default=None,
              help="Steps run at once, torch limited to cores/jobs threads each. Default: the preset's.")
@click.option("--device", default=None, help="cpu, cuda or cuda:N. Default: the preset's.")
@click.option("--teachers", type=click.Choice(["weight-free", "auto"]), default="weight-free", show_default=True,
              help="weight-free: DIS flow + MOG2 background subtraction; auto: the paper's GMA and "
                   "YOLOv8+MobileSAM when their weights are in SOFF_WEIGHTS.")
@click.option("--dry-run", is_flag=True, help="Print the command lines and exit.")
def main(preset, out, datasets, jobs, device, teachers, dry_run):
    """Run the Ped1 -> Ped2 few-shot experiment of the SOFF paper into one results folder (resumable)."""
    p = PRESETS[preset]
    if device:
        p = replace(p, device=device)
    jobs = jobs or p.jobs
    cores = os.cpu_count() or 1
    out = (out or REPO / "runs" / f"ped1_to_ped2-{preset}").resolve()
    datasets = datasets.resolve()
    steps = build_steps(p, datasets, out, teachers, cores)
    if dry_run:
        for s in steps:
            click.echo(s.command)
        return
    out.mkdir(parents=True, exist_ok=True)
    info = {"preset": asdict(p), "teachers": teachers, "jobs": jobs, "cores": cores, "datasets": str(datasets),
            "python": sys.executable}
    (out / PRESET_FILE).write_text(json.dumps(info, indent=1) + "\n")
    (out / COMMANDS_FILE).write_text(
        "#!/bin/sh\n# The chain of experiments/ped1_to_ped2.py --preset " + preset + ", in order; each line is one "
        "step (steps.jsonl has their wall times and exit status).\nset -e\n"
        + "".join(f"{s.command}\n" for s in steps))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))    # runs run_steps' clean-up
    t0 = time.time()
    click.echo(f"ped1 -> ped2, preset {preset}: {len(steps)} steps into {out}, {jobs} at once on {cores} cores")
    failures = run_steps(steps, out, jobs, cores, lambda m: click.echo(f"[{time.strftime('%H:%M:%S')}] {m}"))
    click.echo(f"{'finished' if not failures else f'{failures} step(s) failed'} in {time.time() - t0:.1f} s")
    if failures:
        sys.exit(1)
    click.echo((out / "results.md").read_text())


if __name__ == "__main__":
    main()
