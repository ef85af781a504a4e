"""Evaluation: `flowcodec bench` (in `bench/`), metrics, classical codecs, published anchors, the
rate-distortion bound analysis and the large-image resource measurements.

May import everything but `training`; the coding core never imports it."""
