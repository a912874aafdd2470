#!/usr/bin/env python
"""Training the split dense units through one buffer (`_GrowthBuffer`) vs growing them by concatenations, in one run.

Rows (the full U-HDN x2 by default; every row starts from the same weights and trains on the same batch):

  vanilla               U-HDN without IKM as the authors run it (every conv reads the concatenation): the baseline
  vanilla-split / cat   the library's U-HDN without IKM, dense units split, growth channels by one torch.cat per layer
  vanilla-split / buf   the same, growth channels written into one buffer, backward by hand (`set_dense_buffer`)
  ours / cat, ours / buf  U-HDN+IKM (IsO), fast path with the batch's kernels as one grouped conv (what a GPU runs)

Columns:

  operators  computing aten operators of one eager training step (forward, L1, backward, Adam with foreach as on a GPU;
             `ikm_nb.complexity.count_ops`), and their ratio to `vanilla`: an eager GPU step is bound by them
  kept MiB   what autograd keeps for the backward of that step (each storage counted once), at the benchmark's batch
  ms         median time of a training step on this device, rounds interleaved; its ratio to the `cat` row of the same net
  diff       largest relative difference between the `cat` and `buf` rows' outputs and gradients after the same step
             (0: the same bits)

  .venv/bin/python benchmarks/bench_buffer.py                       # CPU, full U-HDN x2, batch 16 of 48x48: ~4 minutes
  .venv/bin/python benchmarks/bench_buffer.py --out docs/benchmarks.md
  python benchmarks/bench_buffer.py --device cuda                   # on a GPU machine, with a CUDA build of torch
"""
from __future__ import annotations
import argparse, datetime, statistics, sys, time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_ikm import build, options, device_name                         # noqa: E402
from ikm_nb.arch import set_dense_buffer                                   # noqa: E402
from ikm_nb.complexity import count_ops                                    # noqa: E402

ROWS = [('vanilla', 'vanilla', None), ('vanilla-split', 'vanilla-split', False), ('vanilla-split', 'vanilla-split', True),
        ('ours', 'ours-grouped', False), ('ours', 'ours-grouped', True)]   # (label, bench_ikm model, buffer)


class Row:
    def __init__(self, label, model, buffer, a, device):
        self.label, self.model_name, self.buffer = label, model, buffer
        self.way = '-' if buffer is None else 'buf' if buffer else 'cat'
        self.model = build(model, a, device)
        if buffer is not None: set_dense_buffer(self.model, buffer)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=2e-4, foreach=True)
        g = torch.Generator().manual_seed(1)
        self.x = torch.rand(a.batch, 3, a.patch, a.patch, generator=g).to(device)
        self.t = torch.rand(a.batch, 3, a.patch * a.scale, a.patch * a.scale, generator=g).to(device)
        self.device, self.times = device, []

    def forward(self):
        with options(self.model_name): return self.model(self.x)

    def step(self):
        self.opt.zero_grad(set_to_none=True)
        F.l1_loss(self.forward(), self.t).backward()
        self.opt.step()

    def kept_bytes(self) -> int:
        storages = {}
        def pack(t):
            s = t.untyped_storage(); storages[s.data_ptr()] = s.nbytes(); return t
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t): y = self.forward()
        del y
        return sum(storages.values())

    def timed_step(self):
        sync = torch.cuda.synchronize if self.device.type == 'cuda' else (lambda: None)
        sync(); t0 = time.perf_counter(); self.step(); sync()
        self.times.append(time.perf_counter() - t0)

    def outputs_and_grads(self):
        "Output and every gradient of one forward + backward from the rows' common initial weights (no update)."
        self.model.zero_grad(set_to_none=True)
        y = self.forward(); F.l1_loss(y, self.t).backward()
        return [y.detach()] + [p.grad.clone() for p in self.model.parameters()]


def rel_diff(a, b) -> float:
    return max(((x - y).abs().max() / y.abs().max().clamp_min(1e-30)).item() for x, y in zip(a, b))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--model', default='uhdn', help="preset")
    ap.add_argument('--scale', type=int, default=2)
    ap.add_argument('--blocks', type=int, default=None, help="override the preset's number of blocks N")
    ap.add_argument('--batch', type=int, default=16)
    ap.add_argument('--patch', type=int, default=48, help="LR patch side")
    ap.add_argument('--threads', type=int, default=None, help="CPU threads (default: torch's)")
    ap.add_argument('--rounds', type=int, default=5, help="timed rounds (each row once per round, after one warm-up)")
    ap.add_argument('--out', default=None, help="append the table (markdown) to this file")
    a = ap.parse_args(argv)
    if a.threads: torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    when = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')
    rows = [Row(*r, a, device) for r in ROWS]
    diffs = {}
    for label in ('vanilla-split', 'ours'):                          # before any update: the same initial weights
        cat, buf = [r.outputs_and_grads() for r in rows if r.label == label]
        diffs[label] = rel_diff(buf, cat)
    ops = {id(r): sum(count_ops(r.step).values()) for r in rows}      # (count_ops warms up: one update per row)
    kept = {id(r): r.kept_bytes() for r in rows}
    for _ in range(a.rounds):
        for r in rows: r.timed_step()
    ms = {id(r): 1e3 * statistics.median(r.times) for r in rows}
    base_ops = ops[id(rows[0])]
    cat_ms = {r.label: ms[id(r)] for r in rows if r.way == 'cat'}
    lines = [f"- device: {device_name(device)}; torch {torch.__version__}; threads {torch.get_num_threads()}; {when}",
             f"- command: bench_buffer.py {' '.join(argv if argv is not None else sys.argv[1:])}",
             f"- model: preset {a.model!r} x{a.scale}" + (f", N = {a.blocks}" if a.blocks else '')
             + f"; train step: batch {a.batch} of {a.patch}x{a.patch}, L1, Adam (foreach); {a.rounds} timed rounds", '',
             "| model | growth | operators | ratio to vanilla | kept MiB | ms (median) | ratio to cat | diff to cat |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        i = id(r)
        to_cat = f"{ms[i] / cat_ms[r.label]:.2f}x" if r.label in cat_ms else '-'
        diff = '-' if r.way != 'buf' else ('0 (same bits)' if diffs[r.label] == 0 else f"{diffs[r.label]:.1e}")
        lines.append(f"| {r.label} | {r.way} | {ops[i]} | {ops[i] / base_ops:.2f}x | {kept[i] / 2**20:.1f} | "
                     f"{ms[i]:.0f} | {to_cat} | {diff} |")
    text = '\n'.join(lines)
    print(text)
    if a.out:
        with open(a.out, 'a') as f: f.write('\n' + text + '\n')


if __name__ == '__main__':
    main()
