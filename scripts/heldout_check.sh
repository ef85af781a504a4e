#!/usr/bin/env bash
# The held-out check every flow candidate passes before it ships (never Kodak): the model's bits
# and rounding on 256² central crops of the 15 Middlebury left views at five β, with the BD-rate
# against REFERENCE's curve when given. One definition for ship_flow.sh and the ablation scripts,
# so that their figures are comparable.
#
#   scripts/heldout_check.sh WEIGHTS OUT.json [REFERENCE.json]
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m flowcodec_cli.training.evaluate "$1" \
  --data ../shared/data/stereo/middlebury_trainingQ/left --betas 0.0002,0.001,0.004,0.015,0.05 \
  --threads 2 ${3:+--reference "$3"} --out "$2"
