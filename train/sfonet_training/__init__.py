"""train/sfonet_training."""
