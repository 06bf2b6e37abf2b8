"""evaluate-predictor and results-table: config, targets (ground truth and what --predictor names), predict (one
video through a predictor), scoring (PSNR, min-max, AUCs), evaluate (the run), plots, results_table, cli."""
