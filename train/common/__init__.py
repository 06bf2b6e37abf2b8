"""train/common."""
