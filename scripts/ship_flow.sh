#!/usr/bin/env bash
# Ship continued flow weights: the held-out check first (never Kodak), then everything that is
# pinned to the weights' sha256, in the order that each step needs the one before it.
#
#   scripts/ship_flow.sh CANDIDATE.safetensors REFERENCE.json [EVAL_OUT.json]
#
# REFERENCE.json is the shipped weights' held-out curve ({"curve": [...]} as written by
# python -m flowcodec_cli.training.evaluate; weights/flow.json's held_out_check has it). Ships only
# if the candidate's BD-rate against it is below 0; exit 3 otherwise, with nothing changed.
# Afterwards: the model card (weights/flow.json), the tests, and a commit that says why.
set -euo pipefail
cd "$(dirname "$0")/.."
candidate=$1 reference=$2 eval_out=${3:-runs/eval/candidate.json}
PY=.venv/bin/python
STEREO=../shared/data/stereo/middlebury_trainingQ
sha() { sha256sum "$1" | cut -d' ' -f1; }
mkdir -p "$(dirname "$eval_out")" runs

if [ ! -f "$eval_out" ]; then
  scripts/heldout_check.sh "$candidate" "$eval_out" "$reference"
fi
bd=$($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['bd_rate_vs_reference'])" "$eval_out")
echo "held-out BD-rate vs the shipped weights: $bd %"
if ! $PY -c "import sys; sys.exit(0 if float(sys.argv[1]) < 0 else 1)" "$bd"; then
  echo "not better on held-out photos: not shipping"; exit 3
fi

old_flow=$(sha weights/flow.safetensors) old_dsc=$(sha weights/dsc.safetensors)
cp weights/dsc.safetensors runs/dsc-side.safetensors   # the side stage to graft back
cp "$candidate" weights/flow.safetensors
# β → network β knots, written into the weights (so the sha changes here, once)
$PY -m flowcodec_cli.training.operating_points weights/flow.safetensors \
  --data $STEREO/left $STEREO/right --out docs/operating_points/flow.json --write
new_flow=$(sha weights/flow.safetensors)
sed -i "s/$old_flow/$new_flow/g" src/flowcodec_cli/zoo.py            # flow and dsc-separate
$PY -m flowcodec_cli.training.quality_map docs/operating_points/flow.json \
  docs/operating_points/hyperprior.json                              # the -q scale
$PY scripts/quality_tables.py
$PY -m flowcodec_cli.training.channel_stats weights/flow.safetensors \
  --data ../shared/data/bsds500/train --out src/flowcodec_cli/data/channel_stats.json
# dsc follows the flow: its side stage (latent_pull, fusion) onto the new weights
.venv/bin/flowcodec train graft runs/dsc-side.safetensors weights/flow.safetensors \
  weights/dsc.safetensors --parts latent_pull fusion
new_dsc=$(sha weights/dsc.safetensors)
sed -i "s/$old_dsc/$new_dsc/g" src/flowcodec_cli/zoo.py             # dsc and dsc-joint
$PY tests/golden/make_golden.py                                     # last: needs every sha above
echo "shipped: flow $old_flow -> $new_flow, dsc $old_dsc -> $new_dsc"
