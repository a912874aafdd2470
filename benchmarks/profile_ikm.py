#!/usr/bin/env python
"""Where the time of one U-HDN x2 training step / inference goes: torch.profiler's top operators, per row of bench_ikm.py.

  python benchmarks/profile_ikm.py --device cuda --models vanilla-split,ours --top 15

Prints, per (model, task), the number of device kernels launched and the operators with the most self device time
(CPU: self CPU time). Same models and inputs as `bench_ikm.py` (its `Runner`), eager mode (`--setting`: also channels_last, bf16, bf16-cl).
"""
from __future__ import annotations
import argparse, sys
from pathlib import Path

import torch
from torch.profiler import profile, ProfilerActivity

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_ikm                                                             # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--device', default='auto')
    p.add_argument('--models', default='vanilla-split,ours')
    p.add_argument('--tasks', default='train,infer')
    p.add_argument('--blocks', type=int, default=None)
    p.add_argument('--top', type=int, default=15)
    p.add_argument('--setting', default='eager', help="a bench_ikm.py setting without graphs: eager, channels_last, bf16, bf16-cl")
    a = p.parse_args(argv)
    dev = torch.device('cuda' if a.device == 'auto' and torch.cuda.is_available() else
                       ('cpu' if a.device == 'auto' else a.device))
    cuda = dev.type == 'cuda'
    args = argparse.Namespace(model='uhdn', scale=2, blocks=a.blocks, batch=16, patch=48, lr_size=(240, 180), warmup=2)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    key = 'self_cuda_time_total' if cuda else 'self_cpu_time_total'
    for name in a.models.split(','):
        for task in a.tasks.split(','):
            r = bench_ikm.Runner(name, a.setting, task, args, dev)
            r.prepare()
            with profile(activities=acts) as prof:
                r.run()
            kernels = sum(1 for e in prof.events() if cuda and e.device_type == torch.autograd.DeviceType.CUDA)
            print(f"\n=== {name} / {task} / {a.setting} on {bench_ikm.device_name(dev)}"
                  + (f": {kernels} device kernels in one call" if cuda else ''))
            print(prof.key_averages().table(sort_by=key, row_limit=a.top, max_name_column_width=60))


if __name__ == '__main__':
    main()
