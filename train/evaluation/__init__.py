"""train/evaluation."""
