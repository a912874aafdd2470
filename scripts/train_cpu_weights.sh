#!/usr/bin/env bash
# The shipped U-HDN+IKM weights, trained on a CPU: the paper's network, batch 16 and 48x48 LR patches, on the 291 images shipped
# in data/train (T91 + BSD200), with the `cpu_weights` profile of ikm_nb.train. Each scale is trained as a chain of runs, its
# STAGES below, each small enough to finish within one working session of a 2-core machine: stage L of scale S is the run
# results/runs_cpu/cpu_uhdn-ikm_xS_L, which begins from the weights the stage before it wrote (all tensors; Adam starts afresh)
# and, once it has made its last update, writes its own to results/runs_cpu/cpu_uhdn-ikm_xS_L/weights.pt. Those weights are
# committed with the run's config, metrics and log, so the chain survives the loss of a machine; the checkpoints that let a
# stage resume exactly between its parts stay on the machine (gitignored). Each weights file's budget holds the budget of the
# file its run began from, and counts updates and seconds from the seed (total_steps, total_seconds).
# x3 and x4 begin from the weights of x2 stage X34_FROM (all tensors but the upsampler), as EDSR trains its x3 and x4 networks
# from its x2 network. Two one-thread runs at once get about 1.2x the updates of one two-thread run (docs/benchmarks.md), so
# x3 and x4 are best trained at the same time:
#     OMP_NUM_THREADS=1 scripts/train_cpu_weights.sh 3 & OMP_NUM_THREADS=1 scripts/train_cpu_weights.sh 4
# Precision: bf16 autocast where the CPU has AMX-BF16 (1.8x faster than float32 there), float32 elsewhere (a CPU with only
# AVX512-BF16 runs bf16 slower than float32); a stage resumed keeps the precision it began with. AMP=off|bf16 overrides it.
#
#   scripts/train_cpu_weights.sh SCALE [SECONDS]   train the scale's first unfinished stage for at most SECONDS (default
#                                                  3300); a stage that makes its last update writes its weights.pt
#   scripts/train_cpu_weights.sh SCALE status      the stages, and the Set5 validations of those begun
#   scripts/train_cpu_weights.sh SCALE ship [STAGE]  copy the last stage's weights (or those of the finished STAGE, to ship a
#                                                  chain's first stages) to ikm_nb/weights/uhdn_xSCALE.pt (FORCE=1 where that
#                                                  file holds other weights)
# FORCE=1 starts over a stage whose logs are here but whose checkpoint is not (trained on a machine that is gone); its old
# files are moved aside to results/runs_cpu/cpu_uhdn-ikm_xS_L.replaced-TIME/.
set -euo pipefail
cd "$(dirname "$0")/.."
s=${1:?usage: scripts/train_cpu_weights.sh SCALE [SECONDS | status | ship [STAGE]]}; arg=${2:-3300}
PY=${PYTHON:-.venv/bin/python}
# STAGES: scale, stage, updates, learning rate (constant within a stage). x2: 30,000 updates, the rate 2e-4 (the authors' code)
# halved after 7,500 and 12,500, where the Set5 validation had stopped rising at the rate before, and again after 20,000. At
# 2e-4 it stopped after about 6,000 updates in two runs (stages a-c: 37.35 / 37.41 / 37.39 dB at 6,000 / 7,000 / 7,500; the
# earlier bf16 run, results/runs_cpu/cpu_uhdn-ikm_x2: 37.39 at 6,000, 37.36 at 10,000); at 1e-4 within stage d (37.44 / 37.44
# / 37.45 at 8,500 / 9,500 / 10,000; 37.46 at 11,000 in stage e). x3 and x4: 15,000 updates from the x2 network, the rate
# halved after 5,000 and 10,000, in stages of 1,250 updates: trained side by side, one thread each (5.3 and 6.3 s per update
# on a 2-core Intel Xeon in float32), a stage ends within one working session, so no more than a session's work is lost with a
# machine.
STAGES="
2 a 2500 2e-4
2 b 2500 2e-4
2 c 2500 2e-4
2 d 2500 1e-4
2 e 2500 1e-4
2 f 2500 5e-5
2 g 2500 5e-5
2 h 2500 5e-5
2 i 2500 2.5e-5
2 j 2500 2.5e-5
2 k 2500 2.5e-5
2 l 2500 2.5e-5
3 a 1250 2e-4
3 b 1250 2e-4
3 c 1250 2e-4
3 d 1250 2e-4
3 e 1250 1e-4
3 f 1250 1e-4
3 g 1250 1e-4
3 h 1250 1e-4
3 i 1250 5e-5
3 j 1250 5e-5
3 k 1250 5e-5
3 l 1250 5e-5
4 a 1250 2e-4
4 b 1250 2e-4
4 c 1250 2e-4
4 d 1250 2e-4
4 e 1250 1e-4
4 f 1250 1e-4
4 g 1250 1e-4
4 h 1250 1e-4
4 i 1250 5e-5
4 j 1250 5e-5
4 k 1250 5e-5
4 l 1250 5e-5"
# X34_FROM: the x2 stage whose weights x3 and x4 begin from. Stage d (10,000 updates) rather than x2's last: the x2 network
# gained 0.02 dB on Set5 from 8,500 to 11,000 updates, while the shipped x3 and x4 were 1,000-update networks 1.7 and 1.9 dB
# below VDSR on Set5; so x3 and x4 are trained first, and x2's stages e-l after them.
X34_FROM=d
case "$s" in 2|3|4) ;; *) echo "SCALE must be 2, 3 or 4 (got '$s')" >&2; exit 2;; esac
[[ "$arg" =~ ^(status|ship|[0-9]+)$ ]] || { echo "the second argument must be SECONDS, status or ship (got '$arg')" >&2; exit 2; }
dir() { echo "results/runs_cpu/cpu_uhdn-ikm_x$1_$2"; }
stages() { echo "$STAGES" | awk -v s="$1" '$1 == s {print $2, $3, $4}'; }
last_of() { stages "$1" | tail -1 | cut -d' ' -f1; }

if [ "$arg" = status ]; then
  while read -r L n lr; do
    d=$(dir "$s" "$L"); what="not begun"
    [ -f "$d/metrics.csv" ] && what="begun: $(awk -F, 'NR > 1 {n = $1} END {print n + 0}' "$d/metrics.csv") updates$( [ -f "$d/checkpoints/latest.pt" ] || echo ', no checkpoint here')"
    [ -f "$d/weights.pt" ] && what="finished (weights.pt)"
    echo "x$s stage $L: $n updates at lr $lr: $what"
    [ -f "$d/metrics.csv" ] && awk -F, 'NR > 1 && $4 != "" {printf "    Set5 at update %s: %.2f dB\n", $1, $4}' "$d/metrics.csv"
  done < <(stages "$s")
  exit 0
fi
if [ "$arg" = ship ]; then   # the last (or the named) stage's weights, with the budget of the chain, become the shipped file
  L=${3:-$(last_of "$s")}
  stages "$s" | cut -d' ' -f1 | grep -qx -- "$L" || { echo "shipping x$s: no stage '$L' (scripts/train_cpu_weights.sh $s status)" >&2; exit 2; }
  w="$(dir "$s" "$L")/weights.pt"
  [ -f "$w" ] || { echo "shipping x$s: $w is missing; train the stages up to $L first (scripts/train_cpu_weights.sh $s status)" >&2; exit 2; }
  t="ikm_nb/weights/uhdn_x$s.pt"
  if [ -f "$t" ] && ! cmp -s "$w" "$t" && [ "${FORCE:-0}" != 1 ]; then
    echo "shipping x$s: $t holds other weights; FORCE=1 scripts/train_cpu_weights.sh $s ship ${3:-} replaces them with $w" >&2; exit 2
  fi
  cp "$w" "$t.tmp" && mv "$t.tmp" "$t"
  echo "$t: $w"; exit 0
fi

prev=""   # the weights the stage begins from
while read -r L n lr; do
  d=$(dir "$s" "$L")
  if [ -f "$d/weights.pt" ]; then prev="$d/weights.pt"; continue; fi
  if [ -z "$prev" ] && [ "$s" != 2 ]; then
    prev="$(dir 2 "$X34_FROM")/weights.pt"
    [ -f "$prev" ] || { echo "x$s begins from x2 stage $X34_FROM's network: $prev is missing; train x2 to that stage first" >&2
                        exit 2; }
  fi
  init=(); [ -n "$prev" ] && init=(--init-weights "$prev")
  resume=()
  if [ -f "$d/metrics.csv" ] && [ ! -f "$d/checkpoints/latest.pt" ]; then
    [ "${FORCE:-0}" = 1 ] || { echo "$d has the logs of a stage begun elsewhere but no checkpoint to resume it from:" \
                                    "FORCE=1 starts it over (the old files are moved aside)" >&2; exit 2; }
    resume=(--no-resume)
  fi
  if [ -f "$d/config.json" ] && [ -f "$d/checkpoints/latest.pt" ]; then   # a stage resumed keeps its precision
    amp=$($PY -c "import json; print(json.load(open('$d/config.json'))['train']['amp'])")
  else
    amp=${AMP:-$(grep -qw amx_bf16 /proc/cpuinfo && echo bf16 || echo off)}
  fi
  common=(--profile cpu_weights --scale "$s" --run-name "$(basename "$d")" --out-dir results/runs_cpu --steps "$n" --lr "$lr"
          --amp "$amp" "${init[@]}")
  echo "x$s stage $L ($n updates at lr $lr, amp $amp${prev:+, from $prev})"
  OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)} $PY -m ikm_nb.cli train "${common[@]}" "${resume[@]}" --max-seconds "$arg"
  if $PY -c "import sys; from ikm_nb.checkpoint import load_checkpoint as l; st = l('$d/checkpoints/latest.pt')
sys.exit(st['step'] < st['train_config']['steps'])"; then   # finished: its weights, the next stage's start
    OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)} $PY -m ikm_nb.cli train "${common[@]}" \
        --save-weights "$d/weights.pt" --weights-from latest > /dev/null
    echo "x$s stage $L finished: $d/weights.pt (commit it with the stage's config.json, metrics.csv and train.log)"
  fi
  exit 0
done < <(stages "$s")
echo "x$s: every stage is finished; scripts/train_cpu_weights.sh $s ship"
