"""Dataset manifests: one JSON file per benchmark (videos, frame counts, sizes, ground-truth files).

Read them through :mod:`pipeline.manifests`; this package only ships the files.
"""
