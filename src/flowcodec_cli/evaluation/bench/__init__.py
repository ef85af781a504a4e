"""`flowcodec bench`: options, plan, measure, cache, curves and BD, analyses, reports; `stereo`
for `--stereo`. May import the codec, zoo, files and the rest of evaluation, never training/cli.
Re-exports what the CLI and tests use; run.py's docstring is the overview."""

from flowcodec_cli.evaluation.bench.curves import bd_pair
from flowcodec_cli.evaluation.bench.images import NoReadableImages
from flowcodec_cli.evaluation.bench.options import (BenchUsageError, parse_floats, parse_names,
                                                    parse_setting_overrides)
from flowcodec_cli.evaluation.bench.plan import DEFAULT_BETAS, default_betas, plan_models
from flowcodec_cli.evaluation.bench.run import FORMAT, BenchResult, run

__all__ = ["run", "BenchResult", "BenchUsageError", "NoReadableImages", "FORMAT",
           "DEFAULT_BETAS", "default_betas", "plan_models", "bd_pair", "parse_floats",
           "parse_names", "parse_setting_overrides"]
