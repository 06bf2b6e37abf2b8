"""The results page of a run-experiment folder: what it reads (data), its analysis sections (analysis) and the
page itself (page: soff results-page RUN --out docs/results.md)."""
