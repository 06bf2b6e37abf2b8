"""train-sfonet: SFO-Net in three (or two, or one) stages from label stores. config (the one declaration), data,
store_checks, metrics, loop, cli."""
