#!/usr/bin/env python
"""How far the committed cpu results move on another CPU model: table1_uhdn's own training run, as committed at two commits
that ran the same code on different CPUs.

table1_uhdn's cpu profile trains U-HDN+IKM x2 in the notebook (800 updates of 16 x 48x48 T91 patches, one CPU thread, fixed
seed and batches) and evaluates it. Rerunning it on another CPU model runs the same float32 operations through that CPU's
kernels, which round differently; training amplifies the difference. This puts the two committed runs side by side: the loss
at each logged update (`results/runs/<run>/metrics.csv`), the first logged update where the printed losses part, and the
PSNR on each set (`results/tables/table1_uhdn_cpu.csv`). It writes `results/tables/cross_cpu_table1_uhdn.csv` (the README's
reproducibility paragraph reads it) and prints it.

  .venv/bin/python benchmarks/cross_cpu.py            # d22a872 (2-core AMD EPYC) against 8e50881 (2-core Intel Xeon)
  .venv/bin/python benchmarks/cross_cpu.py --force    # replace the committed table
"""
import argparse, io, subprocess, sys
from pathlib import Path
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
RUN = 'results/runs/uhdn-ikm_x2_N1M6C32_iso_T91_800-steps/metrics.csv'
TABLE = 'results/tables/table1_uhdn_cpu.csv'
OUT = ROOT / 'results' / 'tables' / 'cross_cpu_table1_uhdn.csv'
# The CPU each commit's table1_uhdn run was made on (the runs record 'cpu', not the model; the commits' messages and the
# study's speed table, results/tables/table3_ikm_study_speed.csv, name the machines).
RUNS = (('d22a872', '2-core AMD EPYC'), ('8e50881', '2-core Intel Xeon'))


def show(rev, path):
    "A committed file's text at `rev` (an error naming the commit when the clone lacks it, e.g. a shallow clone)."
    r = subprocess.run(['git', '-C', str(ROOT), 'show', f'{rev}:{path}'], capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"cannot read {path} at commit {rev} ({r.stderr.strip()}): run this in a full clone (git fetch --unshallow)")
    return pd.read_csv(io.StringIO(r.stdout))


def cross_cpu_table():
    "The two runs side by side (one row per CPU) and their losses at the logged updates (one column per commit)."
    rows, losses = [], {}
    for rev, cpu in RUNS:
        m, t = show(rev, RUN), show(rev, TABLE)
        mine = t[t.source.str.startswith('ours: trained in this notebook')].set_index('set')
        losses[rev] = m.set_index('step').loss
        rows.append(dict(cpu=cpu, commit=rev, steps=int(m.step.max()), final_loss=float(m.loss.iloc[-1]),
                         **{f'psnr_{s}': float(mine.psnr[s]) for s in ('Set5', 'Set14', 'BSD100')}))
    both = pd.concat([losses[rev] for rev, _ in RUNS], axis=1, keys=[rev for rev, _ in RUNS]).dropna()
    parted = both.index[both.iloc[:, 0] != both.iloc[:, 1]]
    df = pd.DataFrame(rows).assign(equal_losses_until=int(both.index[both.index < parted.min()].max()) if len(parted) else None,
                                   first_parted_update=int(parted.min()) if len(parted) else None)
    return df, both


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--force', action='store_true', help=f"replace {OUT.relative_to(ROOT)} if it exists")
    a = ap.parse_args(argv)
    if OUT.exists() and not a.force: sys.exit(f"{OUT.relative_to(ROOT)} exists: pass --force to replace it")
    df, both = cross_cpu_table()
    tmp = OUT.with_suffix('.tmp.csv')
    df.to_csv(tmp, index=False); tmp.replace(OUT)
    print(df.to_string(index=False))
    print(f"\nlosses at the first logged updates (the printed digits):\n{both.head(6).to_string()}")

if __name__ == '__main__':
    main()
