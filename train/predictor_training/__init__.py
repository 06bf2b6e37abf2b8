"""train/predictor_training."""
