#!/usr/bin/env bash
# The checkerboard's equal-budget pair (docs/flow.md, "Checkerboard inside each slice"): two arms
# from the same start (the shipped weights/flow.safetensors), the same seed, data, steps and
# learning-rate schedule; only the entropy model differs:
#
#   checkerboard   grown with {"context_checkerboard": true} (the new spatial nets start at zero)
#   plain          the shipped architecture, continued
#
# Each arm trains in runs/cb/<arm>/ (resumable: run it again), logs to runs/cb/<arm>.log, and is
# exported and checked on held-out Middlebury left views (never Kodak) with the ship's held-out
# command against the start's curve (runs/cb/start.json, the same command on the start weights).
#
#   scripts/train_checkerboard.sh ARM [STEPS] [MINUTES] [THREADS]     (train one arm)
#   scripts/train_checkerboard.sh eval ARM                             (export + held-out check)
set -euo pipefail
cd "$(dirname "$0")/.."
root=runs/cb
mkdir -p $root
start=$root/start.safetensors
[ -f $start ] || cp weights/flow.safetensors $start
if [ "$1" = eval ]; then
  arm=$2
  [ -f $root/start.json ] || scripts/heldout_check.sh $start $root/start.json
  .venv/bin/flowcodec train export $root/$arm/checkpoint.pt $root/$arm/flow.safetensors \
    --record $root/$arm/record.json
  scripts/heldout_check.sh $root/$arm/flow.safetensors $root/$arm.json $root/start.json
  exit
fi
arm=$1 steps=${2:-3000} minutes=${3:-0} threads=${4:-1}
case $arm in
  checkerboard) config='{"context_checkerboard": true}' ;;
  plain) config='{}' ;;
  *) echo "unknown arm: $arm (checkerboard, plain or eval)" >&2; exit 2 ;;
esac
data="../shared/data/bsds500/train ../shared/data/bsds500/val ../shared/data/train/imagenet_sample ../shared/data/train/sun_hays80"
exec .venv/bin/flowcodec train --model flow --init-from $start --config "$config" --data $data \
  --run-dir $root/$arm --steps "$steps" --budget-minutes "$minutes" --batch 8 --crop 128 \
  --max-side 384 --lr 0.00015 --clip 1.0 --threads "$threads" --device cpu --seed 4920 \
  --log-every 50 --checkpoint-seconds 240.0 >> $root/$arm.log 2>&1
