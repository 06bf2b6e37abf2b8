"""train-predictor: pre-training a frame predictor on a dataset's normal videos. config, loop, cli."""
