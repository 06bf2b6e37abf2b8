"""Dataset access, used by make-labels and by the trainers: benchmark manifests, frame files and sources, ground
truth, pixel masks, and verify-data (verify, cli)."""
