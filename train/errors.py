"""Errors of the training commands: the CLI prints ``str(err)`` as one line and exits 1."""


class TrainError(Exception):
    """A problem with the data or the run folder; the message names the file and the problem."""
