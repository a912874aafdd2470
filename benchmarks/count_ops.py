#!/usr/bin/env python
"""How many operators U-HDN runs per training step and per inference: vanilla vs reference vs ours (eager PyTorch).

On a GPU an eager step of U-HDN is bound by kernel launches, not by arithmetic (docs/benchmarks.md: ~28 ms of GPU work
against ~68 ms of host time for the vanilla step on an H100), so the number of operators that compute something is what
its eager time follows. This script counts them with `ikm_nb.complexity.count_ops` (a dispatch mode), on any device (the
counts do not depend on the device's speed, so the CPU tells what a GPU would launch; on CUDA one operator is one to a
few kernels): every aten operator except views, `detach`, allocations and scalar reads, for one call after a warm-up
call. Columns: all such operators, convolutions (forward and backward), copies and layout or dtype conversions
(`copy_`, `clone`, `_to_copy`, `contiguous`), the ratio of all operators to `vanilla`, and the three most frequent operators.

Rows and tasks are those of `bench_ikm.py` (same models, same train step and inference); the settings are `eager`
(float32) and `bf16-cl` (autocast bf16 + channels-last). The default rows take `ours-grouped`, which is what `ours` runs on
a GPU (on a CPU, batch_conv 'auto' may convolve image by image: one thread, or channels-last), and the split dense units
train through one buffer as on a GPU (`set_dense_buffer`; 'auto' turns it on for CUDA tensors only). Sizes do not change the
counts, so small inputs are the default (seconds):

  .venv/bin/python benchmarks/count_ops.py                           # CPU, full U-HDN x2, batch 4 of 24x24, 60x45 image
  .venv/bin/python benchmarks/count_ops.py --out docs/benchmarks.md  # append the table
"""
from __future__ import annotations
import argparse, collections, datetime, sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ikm import MODELS, Runner, device_name                          # noqa: E402
from ikm_nb.complexity import count_ops                                    # noqa: E402
from ikm_nb.arch import set_dense_buffer                                   # noqa: E402

COPIES = ('copy_', 'clone', '_to_copy', 'contiguous')


def count(name, setting, task, args, device) -> collections.Counter:
    r = Runner(name, setting, task, args, device)
    if task == 'train': r.opt = torch.optim.Adam(r.model.parameters(), lr=2e-4, foreach=True)   # as on a GPU: ~10 operators
    set_dense_buffer(r.model, True)                 # as on a GPU: split units train through one buffer (where it applies)
    return count_ops(r.fn)                                       # after a warm-up call (kernel indices, optimizer state)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--models', default='vanilla,vanilla-split,reference,ours-grouped', help=f"from {', '.join(MODELS)}")
    ap.add_argument('--settings', default='eager,bf16-cl')
    ap.add_argument('--model', default='uhdn', help="preset")
    ap.add_argument('--scale', type=int, default=2)
    ap.add_argument('--blocks', type=int, default=None, help="override the preset's number of blocks N")
    ap.add_argument('--batch', type=int, default=4)
    ap.add_argument('--patch', type=int, default=24, help="LR patch side of the train step")
    ap.add_argument('--lr-size', type=int, nargs=2, default=(60, 45), metavar=('W', 'H'), help="inference image")
    ap.add_argument('--out', default=None, help="append the table (markdown) to this file")
    args = ap.parse_args(argv)
    args.warmup = 0
    device = torch.device(args.device)
    models = args.models.split(',')
    for m in models:
        if m not in MODELS: ap.error(f"unknown model {m!r}: use {', '.join(MODELS)}")
    when = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')
    head = [f"- device: {device_name(device)}; torch {torch.__version__}; threads {torch.get_num_threads()}; {when}",
            f"- command: count_ops.py {' '.join(argv if argv is not None else sys.argv[1:])}",
            f"- model: preset {args.model!r} x{args.scale}" + (f", N = {args.blocks}" if args.blocks else '')
            + f"; train: batch {args.batch} of {args.patch}x{args.patch}, fwd+bwd+Adam; infer: one "
              f"{args.lr_size[0]}x{args.lr_size[1]} image, no grad",
            "", "| setting | task | model | operators | ratio to vanilla | convolutions | copies / conversions | most frequent |",
            "|---|---|---|---:|---:|---:|---:|---|"]
    print('\n'.join(head), flush=True)
    lines = []
    for setting in args.settings.split(','):
        for task in ('train', 'infer'):
            base = None
            for m in models:
                ops = count(m, setting, task, args, device)
                n = sum(ops.values())
                if m == 'vanilla': base = n
                conv = ops['convolution'] + ops['convolution_backward']
                copies = sum(ops[k] for k in COPIES)
                top = ', '.join(f"{k} {v}" for k, v in ops.most_common(3))
                ratio = f"{n / base:.2f}x" if base else ''
                line = (f"| {setting} | {'train step' if task == 'train' else 'inference'} | {m} | {n} | {ratio} | {conv} "
                        f"| {copies} | {top} |")
                print(line, flush=True); lines.append(line)
    if args.out:
        with open(args.out, 'a') as f:
            f.write(f"\n### Operators per call (`benchmarks/count_ops.py`), {device_name(device)}, {when}\n\n"
                    + '\n'.join(head + lines) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
