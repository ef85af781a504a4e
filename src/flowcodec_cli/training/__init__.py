"""Training: the loop, the loss, the data (photo folders, stereo pairs), checkpoints, the quick
rate-distortion yardstick, ablations, model cards and the operating-point fitting.

May import `models`, `codec`, `files`, `zoo` and `evaluation.metrics`; the coding core never imports it."""
