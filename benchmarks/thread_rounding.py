#!/usr/bin/env python
"""How much a CPU thread count moves the committed cpu results: each run's PSNR at one commit against the same run's at another.

The committed `cpu` tables were made on two threads per notebook up to commit 21daf9f and on one thread since (the same
seeds, data and code path otherwise; `ikm_nb.reproduce.experiment_output`). Float32 convolutions round differently on one
and on two threads, so the two sets of numbers differ; this prints, per experiment, how much each run's PSNR moved (mean and
largest absolute change) beside the spread over seeds of the newer tables (the mean over configurations and sets of the
standard deviation across seeds), so the rounding's effect can be read against the noise the comparisons are judged by.

  .venv/bin/python benchmarks/thread_rounding.py                  # 21daf9f (two threads) against the working tree
  .venv/bin/python benchmarks/thread_rounding.py --old 21daf9f --new HEAD
"""
import argparse, io, subprocess
from pathlib import Path
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
KEYS = {'table3_backbones': ['backbone', 'variant'], 'table4_receptive_field': ['kernel_size', 'dilation', 'ikm'],
        'fig09_threshold': ['t'], 'fig10_iso': ['mode', 'batch'], 'fig11_hourglass': ['variant'],
        'table5_uhdn_ablation': ['structure'], 'fig08_model_size': ['label']}


def table(rev, name):
    path = f'results/tables/{name}_cpu.csv'
    if rev is None: return pd.read_csv(ROOT / path)
    text = subprocess.run(['git', '-C', str(ROOT), 'show', f'{rev}:{path}'], capture_output=True, text=True, check=True).stdout
    return pd.read_csv(io.StringIO(text))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--old', default='21daf9f', help="commit of the older tables (two threads)")
    ap.add_argument('--new', default=None, help="commit of the newer tables (default: the working tree)")
    a = ap.parse_args(argv)
    print(f"| experiment | runs | mean abs. change, dB | largest, dB | seed sd, dB |\n|---|---:|---:|---:|---:|")
    for name, cfg in KEYS.items():
        old, new = table(a.old, name), table(a.new, name)
        k = cfg + ['seed', 'set']
        m = old[k + ['psnr']].merge(new[k + ['psnr']], on=k, suffixes=('_old', '_new'))
        if not len(m) == len(old) == len(new): raise SystemExit(f"{name}: the two commits hold different runs")
        d = (m.psnr_new - m.psnr_old).abs()
        print(f"| {name} | {len(m)} | {d.mean():.3f} | {d.max():.3f} | {new.groupby(cfg + ['set']).psnr.std().mean():.3f} |")


if __name__ == '__main__':
    main()
