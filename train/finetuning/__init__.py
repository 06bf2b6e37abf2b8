"""finetune-predictor: K-shot fine-tuning with the SOFF or the standard loss. config, kshot (which clips),
soff_loss (Eqs. 9-10), adapt (the run), cli."""
