"""Experiment drivers: scripts that chain the project's commands into the paper's experiments.

``experiments/ped1_to_ped2.py`` runs the Ped1 -> Ped2 cross-dataset few-shot experiment (issue 7);
``experiments/results_doc.py`` writes ``docs/results.md`` from its results folder.
"""
