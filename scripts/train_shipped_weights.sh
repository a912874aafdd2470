#!/usr/bin/env bash
# How the weights shipped in ikm_nb/weights/ were trained: U-HDN+IKM (the paper's architecture and recipe, lr 2e-4 as the authors'
# code) at x2, x3 and x4, one process per scale sharing one GPU, each stopped after a time budget; the budget reached (updates,
# images, device) is recorded inside each file and printed by the table1_uhdn notebook.
# Usage: scripts/train_shipped_weights.sh TRAIN_FOLDER SECONDS [OUT_DIR]
set -euo pipefail
train=$1; secs=$2; out=${3:-ikm_nb/weights}
PY=${PYTHON:-python3}
mkdir -p "$out"
# build the HDF5 cache of the training images once, before the three runs read it
$PY -c "from ikm_nb.train import profile_config, training_patches; training_patches(profile_config('paper', train_set='$train'))"
for s in 2 3 4; do
  $PY -m ikm_nb.cli train --profile paper --scale $s --train-set "$train" --lr 2e-4 --workers 4 \
      --val-every 500 --ckpt-every 500 --log-every 100 --run-name "shipped_uhdn-ikm_x$s" \
      --max-seconds "$secs" --save-weights "$out/uhdn_x$s.pt" > "$out/train_x$s.log" 2>&1 &
done
wait
