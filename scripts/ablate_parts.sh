#!/usr/bin/env bash
# FlowCodec 2's parts at an equal training budget (issue 16's ablation table in docs/flow.md):
# three arms from the same start, the 24,000-step plain flow (weights/flow.safetensors of commit
# 6fd7f4d, before the context model grew), each trained STEPS steps side by side on one thread:
#
#   plain        the plain hyperprior entropy model, continued
#   context      + channel-conditional context (the shipped slices and order), no residual prediction
#   context-lrp  + latent residual prediction: what shipped
#
# then each measured on held-out Middlebury left crops (never Kodak) with the ship's held-out
# command, BD-rate against the plain arm. New parts start at zero, so every arm computes the
# start's loss at step 0 (tests/test_context.py).
#
#   scripts/ablate_parts.sh [STEPS] [MINUTES]      (runs/parts/<arm>/; resumable: run it again)
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-2000} minutes=${2:-0}
root=runs/parts
mkdir -p $root
start=$root/plain24k.safetensors
[ -f $start ] || git show 6fd7f4d:weights/flow.safetensors > $start
context=$(.venv/bin/python -c "import json; c = json.load(open('weights/flow.json'))['config']; \
print(json.dumps({k: c[k] for k in ('context_slices', 'context_order', 'context_hidden')}))")
declare -A config=(
  [plain]='{}'
  [context]=$(.venv/bin/python -c "import json,sys; print(json.dumps({**json.loads(sys.argv[1]), 'context_lrp': False}))" "$context")
  [context-lrp]=$context
)
data="../shared/data/bsds500/train ../shared/data/bsds500/val ../shared/data/train/imagenet_sample ../shared/data/train/sun_hays80"
for arm in plain context context-lrp; do
  .venv/bin/flowcodec train --model flow --init-from $start --config "${config[$arm]}" --data $data \
    --run-dir $root/$arm --steps "$steps" --budget-minutes "$minutes" --batch 8 --crop 128 --max-side 384 \
    --lr 0.00015 --clip 1.0 --threads 1 --device cpu --seed 1600 --log-every 50 \
    --checkpoint-seconds 240.0 > $root/$arm.log 2>&1 &
done
wait
for arm in plain context context-lrp; do
  .venv/bin/flowcodec train export $root/$arm/checkpoint.pt $root/$arm/flow.safetensors
  reference=""
  [ $arm = plain ] || reference=$root/plain.json
  scripts/heldout_check.sh $root/$arm/flow.safetensors $root/$arm.json $reference
done
