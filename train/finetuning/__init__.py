"""train/finetuning."""
