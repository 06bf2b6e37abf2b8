"""score-video: calibrated anomaly scores, flagged time spans, a score curve and an annotated video for videos
without labels (``cli`` is the command, ``run`` the job, ``inputs`` what it reads, ``overlay`` what it draws)."""
