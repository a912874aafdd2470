#!/usr/bin/env bash
# The GPU rows of docs/benchmarks.md in one run on a machine with a CUDA build of torch (run from the repository root):
#   OUT=/tmp/ikm_gpu bash benchmarks/run_gpu.sh
# 1. bench_ikm.py (float64 equivalence check on the GPU first, then the timing table), 2. profile_ikm.py (where the time goes).
set -u
OUT=${OUT:-/tmp/ikm_gpu}; mkdir -p "$OUT"
export PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$OUT/gpu.txt"
timeout ${BENCH_TIMEOUT:-400} python3 benchmarks/bench_ikm.py --device cuda --budget-s ${BUDGET_S:-280} \
    --settings ${SETTINGS:-eager,cudagraph,channels_last,cudagraph-bf16-cl,compile} \
    --models ${MODELS:-vanilla,vanilla-split,reference,ours,ours-loop} --out "$OUT/bench_cuda.md" 2>&1 | tee "$OUT/bench_cuda.log"
timeout ${PROFILE_TIMEOUT:-90} python3 benchmarks/profile_ikm.py --device cuda --models vanilla-split,ours --top 12 \
    > "$OUT/profile_cuda.txt" 2>&1
tail -c 3000 "$OUT/profile_cuda.txt"
