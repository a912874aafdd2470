#!/usr/bin/env bash
# The shipped U-HDN+IKM weights, trained on a CPU: the paper's network, batch 16 and 48x48 LR patches, bf16 autocast (a CPU with
# AMX-BF16), on the 291 images shipped in data/train (T91 + BSD200), with the `cpu_weights` profile of ikm_nb.train. Each call
# trains one part of one scale, for at most SECONDS, and a later call resumes it exactly where it stopped (a checkpoint under
# results/runs_cpu/cpu_uhdn-ikm_xSCALE/checkpoints; its config, metrics and log are committed, the checkpoints are not).
# x3 and x4 start from the x2 run's tensors (all but the upsampler), as EDSR trains its x3 and x4 networks: train x2
# first.
#
#   scripts/train_cpu_weights.sh SCALE [SECONDS]          one part (default 3300 s), then the run's metrics so far
#   scripts/train_cpu_weights.sh SCALE ship               write the run's best weights to ikm_nb/weights/uhdn_xSCALE.pt
set -euo pipefail
cd "$(dirname "$0")/.."
s=${1:?usage: scripts/train_cpu_weights.sh SCALE [SECONDS | ship]}; arg=${2:-3300}
PY=${PYTHON:-.venv/bin/python}
run=cpu_uhdn-ikm_x$s
init=()
if [ "$s" != 2 ]; then
  x2=results/runs_cpu/cpu_uhdn-ikm_x2/checkpoints/best.pt
  [ -f "$x2" ] || { echo "x$s starts from the x2 run's weights: train x2 first ($x2 is missing)" >&2; exit 2; }
  init=(--init-weights "$x2")
fi
if [ "$arg" = ship ]; then   # a finished run only: no update is made, its best weights are written with their budget
  $PY -c "import sys; from ikm_nb.checkpoint import load_checkpoint as l; st = l('results/runs_cpu/$run/checkpoints/latest.pt')
sys.exit(0 if st['step'] >= st['train_config']['steps'] else f\"$run stopped at step {st['step']} of {st['train_config']['steps']}: train it to the end first\")"
  OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)} exec $PY -m ikm_nb.cli train --profile cpu_weights --scale "$s" --run-name "$run" --out-dir results/runs_cpu "${init[@]}" \
       --save-weights "ikm_nb/weights/uhdn_x$s.pt" --force
fi
OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)} $PY -m ikm_nb.cli train --profile cpu_weights --scale "$s" --run-name "$run" \
    --out-dir results/runs_cpu "${init[@]}" --max-seconds "$arg"
