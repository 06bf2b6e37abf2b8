"""The SOFF experiment as a command: run-experiment (cli), the chain of steps for a (source, target) pair (chain), the
step runner (runner), presets (presets), held-out checks on the target's training videos (validation) and the results page
(report)."""
