#!/usr/bin/env bash
# The shipped U-HDN+IKM weights, trained on a CPU: the paper's network, batch 16 and 48x48 LR patches, bf16 autocast (a CPU with
# AMX-BF16), on the 291 images shipped in data/train (T91 + BSD200), with the `cpu_weights` profile of ikm_nb.train. Each call
# trains one part of one scale, for at most SECONDS, and a later call resumes it exactly where it stopped (a checkpoint under
# results/runs_cpu/cpu_uhdn-ikm_xSCALE/checkpoints; its config, metrics and log are committed, the checkpoints are not).
# x3 and x4 start from the x2 run's last weights, the ones shipped (all tensors but the upsampler), as EDSR trains its x3 and x4
# networks, and train for half the updates (15,000, the rate halved every 5,000): train x2 to its end first. Two one-thread runs at
# once get about 1.2x the updates of one two-thread run (benchmarks/cpu_weights_speed.py --side-by-side), so x3 and x4 are
# best trained at the same time:  OMP_NUM_THREADS=1 scripts/train_cpu_weights.sh 3 & OMP_NUM_THREADS=1 scripts/train_cpu_weights.sh 4
#
#   scripts/train_cpu_weights.sh SCALE [SECONDS]          one part (default 3300 s), then the run's metrics so far
#   scripts/train_cpu_weights.sh SCALE ship               write the finished run's last weights to ikm_nb/weights/uhdn_xSCALE.pt
#                                                         (the last update's, not the best of the Set5 validations: Set5 is
#                                                         also a set the weights are evaluated on)
set -euo pipefail
cd "$(dirname "$0")/.."
s=${1:?usage: scripts/train_cpu_weights.sh SCALE [SECONDS | ship]}; arg=${2:-3300}
PY=${PYTHON:-.venv/bin/python}
run=cpu_uhdn-ikm_x$s
finished() {   # finished RUN WHAT: exit 2 with a message unless the run has made all its updates
  [ -f "results/runs_cpu/$1/checkpoints/latest.pt" ] || { echo "$2: train $1 first (no checkpoint of it here)" >&2; exit 2; }
  $PY -c "import sys; from ikm_nb.checkpoint import load_checkpoint as l; st = l('results/runs_cpu/$1/checkpoints/latest.pt')
sys.exit(0 if st['step'] >= st['train_config']['steps'] else f\"$2: $1 stopped at step {st['step']} of {st['train_config']['steps']}; train it to the end first\")" || exit 2
}
init=()
if [ "$s" != 2 ]; then
  finished cpu_uhdn-ikm_x2 "x$s starts from the finished x2 network"
  init=(--init-weights results/runs_cpu/cpu_uhdn-ikm_x2/checkpoints/latest.pt --steps 15000 --lr-step 5000)
fi
if [ "$arg" = ship ]; then   # a finished run only: no update is made, its last weights are written with their budget
  finished "$run" "shipping x$s"
  OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)} exec $PY -m ikm_nb.cli train --profile cpu_weights --scale "$s" --run-name "$run" --out-dir results/runs_cpu "${init[@]}" \
       --save-weights "ikm_nb/weights/uhdn_x$s.pt" --weights-from latest --force
fi
OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)} $PY -m ikm_nb.cli train --profile cpu_weights --scale "$s" --run-name "$run" \
    --out-dir results/runs_cpu "${init[@]}" --max-seconds "$arg"
