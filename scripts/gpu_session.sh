#!/usr/bin/env bash
# One device session of issue 13: experiment notebooks at the `gpu` profile, side by side on the lent GPU, into $OUT.
# Prepare here once:  bash scripts/gpu_wheels.sh     (papermill and a Jupyter kernel for the device's Python: .wheels-gpu/)
# Then one device call, from the repository root there:
#   run(command="bash scripts/gpu_session.sh", carry=[".wheels-gpu"], timeout_s=590)
# Back under $OUT: session.log, and results_gpu.tar.gz (unpack it at the repository root here: results/reproduce_gpu.csv,
# results/tables/*_gpu*, results/figures/*_gpu*, results/notebooks/gpu/, and each run's config.json, metrics.csv and train.log;
# no checkpoints: they would not fit the 16 MiB a returned file may hold), and bench_buffer_cuda.md (bench_buffer.py, if
# time is left). The runs are seeded, so what does not finish in one call reruns the same way in the next. Settings
# (environment): NOTEBOOKS (default Table III and Table IV), JOBS (notebooks at once, default 2), PROFILE (default gpu; smoke
# to try the script on a CPU), PYTHON (default python3), REPRO_TIMEOUT (seconds, default 480), BENCH_TIMEOUT (seconds,
# default 60), SKIP_WHEELS=1 (an environment that has papermill already, e.g. .venv here).
set -u
OUT=${OUT:-/tmp/ikm_gpu_session}; mkdir -p "$OUT"
PY=${PYTHON:-python3}; PROFILE=${PROFILE:-gpu}
exec > >(tee "$OUT/session.log") 2>&1
date -u '+%Y-%m-%d %H:%M:%S UTC'
if [ "${SKIP_WHEELS:-0}" != 1 ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/ikm_site .wheels-gpu/*.whl \
    || { echo "the wheels did not install: run scripts/gpu_wheels.sh here and carry .wheels-gpu"; exit 1; }
  export PYTHONPATH=/tmp/ikm_site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
$PY -c "import torch, papermill, ipykernel; print('torch', torch.__version__, 'cuda', torch.cuda.is_available() and \
torch.cuda.get_device_name(), '| papermill', papermill.__version__, '| ipykernel', ipykernel.__version__)" || exit 1
timeout ${REPRO_TIMEOUT:-480} $PY -m ikm_nb.cli reproduce --profile "$PROFILE" \
    --only ${NOTEBOOKS:-table3_backbones table4_receptive_field} --jobs ${JOBS:-2}
echo "reproduce exit status $?"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv
files=$(ls -d results/reproduce_${PROFILE}.csv results/tables/*_${PROFILE}* results/figures/*_${PROFILE}* \
        results/notebooks/${PROFILE} results/runs/*_${PROFILE}_*/config.json results/runs/*_${PROFILE}_*/metrics.csv \
        results/runs/*_${PROFILE}_*/train.log 2>/dev/null)
tar czf "$OUT/results_${PROFILE}.tar.gz" $files && echo "$(echo $files | wc -w) files in $OUT/results_${PROFILE}.tar.gz"
if [ "$PROFILE" = gpu ]; then   # issue 15, if time is left: the split units' buffer against concatenations, eager, on the GPU
  timeout ${BENCH_TIMEOUT:-60} $PY benchmarks/bench_buffer.py --device cuda --rounds 10 > "$OUT/bench_buffer_cuda.md" 2>&1
  echo "bench_buffer exit status $?"
fi
ls -l "$OUT"
