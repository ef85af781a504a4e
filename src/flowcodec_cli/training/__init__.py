"""Training: the loop (`loop`), its loss, data, stereo pairs and checkpoints; the quick R-D
yardstick (`evaluate`), ablations, model cards and the operating-point fitting. May import `models`,
`codec`, `files`, `zoo`, `evaluation.metrics` and the bench's CPU name; the coding core never imports it."""
