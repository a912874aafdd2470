#!/usr/bin/env python
"""The trainer with and without CUDA-graph capture (`TrainConfig.cuda_graph`): same losses, and the updates per second.

  python benchmarks/gpu_train_check.py --steps 60          # on a GPU machine (on the CPU both runs are eager)

Trains the full U-HDN+IKM x2 (the 'paper' profile: batch 16 of 48x48) for `--steps` updates on the shipped T91_min192 set,
once eagerly and once graphed, from the same seed; prints the loss every `--log-every` updates for both (the trainer reads
the loss back from the GPU only then, as in a real run), the largest relative difference, and the updates per second of each
run over its second half (after warm-up and capture).
"""
from __future__ import annotations
import argparse, csv, sys, tempfile, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ikm_nb.train import profile_config, train                               # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--steps', type=int, default=60)
    p.add_argument('--profile', default='paper')
    p.add_argument('--device', default=None)
    p.add_argument('--log-every', type=int, default=10, help="the trainer's log_every (1: a wait for the GPU every update)")
    p.add_argument('--no-ikm', dest='ikm', action='store_false', help='the vanilla U-HDN (no IKM)')
    p.add_argument('--cudnn-benchmark', action='store_true',
                   help='a third run: graphed, with TrainConfig.cudnn_benchmark (cuDNN times its algorithms first)')
    a = p.parse_args(argv)
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        for graph, bench in [(False, False), (True, False)] + [(True, True)] * a.cudnn_benchmark:
            cfg = profile_config(a.profile, steps=a.steps, val_set=None, ckpt_every=0, log_every=a.log_every, train_set='T91_min192',
                                 out_dir=tmp, run_name=f'graph_{graph}_{bench}', cuda_graph=graph, device=a.device, ikm=a.ikm,
                                 cudnn_benchmark=bench)
            s = train(cfg, progress=False)
            rows = list(csv.DictReader(open(Path(s['run_dir']) / 'metrics.csv')))
            half = rows[len(rows) // 2]
            dt = float(rows[-1]['seconds']) - float(half['seconds'])   # (metrics.csv keeps 0.1 s: use >= 100 updates)
            rate = (int(rows[-1]['step']) - int(half['step'])) / dt if dt > 0 else float('nan')
            res[graph, bench] = ([(int(r['step']), float(r['loss'])) for r in rows], rate, s['device'])
            print(f"{'U-HDN+IKM' if a.ikm else 'U-HDN (no IKM)'}, cuda_graph={graph}, cudnn_benchmark={bench}: {s['step']} updates on "
                  f"{s['device']} in {s['seconds']:.1f} s; "
                  f"{rate:.2f} updates/s over the second half", flush=True)
    (le, re_, dev), (lg, rg, _) = res[False, False], res[True, False]
    for (i, x), (_, y) in list(zip(le, lg))[::max(1, len(le) // 20)]: print(f"step {i:4d}: loss eager {x:.6f}  graphed {y:.6f}")
    worst = max(abs(x[1] - y[1]) / abs(x[1]) for x, y in zip(le, lg))
    print(f"largest relative loss difference over {len(le)} logged updates: {worst:.2e}; graphed / eager speed: {rg / re_:.2f}x on {dev}")
    if (True, True) in res:
        lb, rb, _ = res[True, True]
        worst = max(abs(x[1] - y[1]) / abs(x[1]) for x, y in zip(le, lb))
        print(f"with cudnn_benchmark: {rb:.2f} updates/s ({rb / rg:.2f}x the graphed run without it); largest relative loss "
              f"difference to eager {worst:.2e} (cuDNN may pick other algorithms: last bits differ)")


if __name__ == '__main__':
    main()
