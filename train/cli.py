"""``soff``: every command of the project in one group, in the order of the workflow (``soff --help`` is the map).
Each subcommand is the same command as its console script (``soff train-sfonet`` = ``train-sfonet``)."""
from __future__ import annotations

import click

from pipeline.core.cli import COMMAND_SETTINGS
from pipeline.data.cli import make_manifest_command, verify_data_command
from pipeline.make_labels.cli import make_labels_command
from pipeline.store.cli import inspect_labels_command
from train.evaluation.cli import evaluate_predictor_command, results_table_command
from train.experiment.cli import run_experiment_command
from train.experiment.report.page import results_page_command
from train.experiment.validation import validation_command
from train.finetuning.cli import finetune_predictor_command, gate_command
from train.mpn_training.cli import train_mpn_command
from train.predictor_training.cli import train_predictor_command
from train.sfonet_training.cli import train_sfonet_command
from train.video_scoring.cli import score_video_command
from train.zxvad_training.cli import train_zxvad_command

WORKFLOW = {"make-manifest": make_manifest_command, "verify-data": verify_data_command,
            "make-labels": make_labels_command,
            "inspect-labels": inspect_labels_command, "train-sfonet": train_sfonet_command,
            "train-predictor": train_predictor_command, "train-mpn": train_mpn_command,
            "train-zxvad": train_zxvad_command,
            "finetune-predictor": finetune_predictor_command,
            "evaluate-predictor": evaluate_predictor_command, "results-table": results_table_command,
            "score-video": score_video_command, "run-experiment": run_experiment_command,
            "gate": gate_command, "validation": validation_command, "results-page": results_page_command}


class _InWorkflowOrder(click.Group):
    def list_commands(self, ctx) -> list[str]:
        return list(WORKFLOW)


@click.group(cls=_InWorkflowOrder, context_settings=COMMAND_SETTINGS, commands=WORKFLOW)
def soff_command() -> None:
    """Few-shot, scene-adaptive video anomaly detection (SOFF): pseudo-labels, SFO-Net, frame predictors.

    \b
    The workflow, in order:
      make-manifest                                a folder of your own videos as a dataset
      verify-data, make-labels, inspect-labels    a source dataset into a label store
      train-sfonet                                 SFO-Net from the store (three stages)
      train-predictor                              a frame predictor on the source's normal videos
      train-mpn                                    MPN's meta-training of a pre-trained --arch mpn predictor
      train-zxvad                                  zxVAD (generator, critics, pseudo-anomalies), no target data
      finetune-predictor                           K-shot fine-tuning on the new scene (SOFF, standard, MPN's step)
      evaluate-predictor, results-table            scores, AUCs, the K-shot table
      score-video                                  calibrated scores, flagged spans, an annotated video
      run-experiment                               all of it for a (source, target) pair
    and the experiment's own steps:
      gate                                         may this SFO-Net teach SOFF? (a verdict record)
      validation                                   choices made on held-out training videos (schedule, ...)
      results-page                                 the results page of a run-experiment folder
    """
