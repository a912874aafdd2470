#!/usr/bin/env bash
# The GPU rows of docs/benchmarks.md in one run on a machine with a CUDA build of torch (run from the repository root):
#   OUT=/tmp/ikm_gpu bash benchmarks/run_gpu.sh
# 1. bench_ikm.py (float64 equivalence check on the GPU first, then the timing table), 2. profile_ikm.py (where the time goes),
# 3. count_ops.py (operators per call; the same counts as on the CPU unless a CUDA kernel differs),
# 4. gpu_train_check.py (the trainer: graphed vs eager, updates/s). Each step has its own timeout; about 9 minutes in all.
set -u
OUT=${OUT:-/tmp/ikm_gpu}; mkdir -p "$OUT"
export PYTHONPATH=$PWD
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$OUT/gpu.txt"
timeout ${BENCH_TIMEOUT:-330} python3 benchmarks/bench_ikm.py --device cuda --budget-s ${BUDGET_S:-240} \
    --settings ${SETTINGS:-eager,cudagraph,cudagraph-bench,cudagraph-bf16-cl,cudagraph-bench-bf16-cl} \
    --models ${MODELS:-vanilla,vanilla-split,reference,ours} --out "$OUT/bench_cuda.md" 2>&1 | tee "$OUT/bench_cuda.log"
timeout ${PROFILE_TIMEOUT:-60} python3 benchmarks/profile_ikm.py --device cuda --models vanilla-split,ours --top 12 \
    > "$OUT/profile_cuda.txt" 2>&1
tail -c 3000 "$OUT/profile_cuda.txt"
timeout ${COUNT_TIMEOUT:-45} python3 benchmarks/count_ops.py --device cuda --out "$OUT/count_ops_cuda.md" > "$OUT/count_ops_cuda.log" 2>&1
tail -n 20 "$OUT/count_ops_cuda.log"
timeout ${TRAIN_TIMEOUT:-110} python3 benchmarks/gpu_train_check.py --steps 200 --cudnn-benchmark > "$OUT/gpu_train_check.txt" 2>&1
tail -n 15 "$OUT/gpu_train_check.txt"
