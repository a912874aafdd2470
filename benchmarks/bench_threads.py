#!/usr/bin/env python
"""Updates per second on a CPU: one training run on T threads vs T runs side by side on one thread each (same run, same data).

`make reproduce` runs the experiment notebooks side by side, each on one CPU thread (`ikm_nb.reproduce.experiment_output`),
instead of one notebook at a time on every core. This measures why, in one run of this script: the same training run
(a Table III network of the cpu profile by default: one U-HDB, C = 64, batch 8 of 24x24 patches, IKM) is timed

  alone     one process on `--threads` threads (what one notebook at a time got before)
  parallel  `--threads` processes at once, each on one thread (what `make reproduce` does now)

and the ratio of the total updates per second (parallel / alone) is printed. Each process trains `--steps` updates in a
temporary folder (the first `--warmup` excluded from the timing: model build, data cache, first-step allocations).

  .venv/bin/python benchmarks/bench_threads.py                  # two threads vs two one-thread runs, about 2 minutes
  .venv/bin/python benchmarks/bench_threads.py --backbone rb --steps 80
"""
import argparse, datetime, json, os, subprocess, sys

CHILD = r"""
import json, sys, tempfile, torch
threads, backbone, steps, warmup = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
from ikm_nb.arch import TABLE3_BACKBONES, TABLE3_VARIANTS
from ikm_nb.reproduce import run_config
from ikm_nb.train import train
S = {'base': dict(profile='cpu', channels=None, lr_step=10**9)}
out = tempfile.mkdtemp(prefix='bench_threads_')
cfg = lambda n: run_config(S, out, 'bench', arch='uhdn', **TABLE3_BACKBONES[backbone], **TABLE3_VARIANTS['ikm'], scale=2,
                           batch=8, patch=24, steps=n, seed=0)
train(cfg(warmup), progress=False)                  # warm-up updates (the run is then resumed: same process, same data)
r = train(cfg(steps), progress=False)               # its seconds: the update loop only
print(json.dumps(dict(threads=threads, updates=steps - warmup, seconds=r['seconds'])))
"""


def launch(threads, a):
    env = {**os.environ, 'OMP_NUM_THREADS': str(threads)}
    return subprocess.Popen([sys.executable, '-c', CHILD, str(threads), a.backbone, str(a.steps), str(a.warmup)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)


def result(p):
    out, _ = p.communicate()
    if p.returncode: raise SystemExit(f"a benchmark process failed (exit {p.returncode})")
    return json.loads(out.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--threads', type=int, default=2, help="threads of the single run = number of parallel one-thread runs")
    ap.add_argument('--backbone', default='uhdb', choices=['rb', 'db', 'rdb', 'uhdb'])
    ap.add_argument('--steps', type=int, default=60, help="updates per process, warm-up included")
    ap.add_argument('--warmup', type=int, default=10)
    a = ap.parse_args(argv)
    print(f"- {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} logical CPUs; "
          f"command: bench_threads.py {' '.join(argv if argv is not None else sys.argv[1:])}")
    alone = result(launch(a.threads, a))
    par = [result(p) for p in [launch(1, a) for _ in range(a.threads)]]
    rate_alone = alone['updates'] / alone['seconds']
    rates = [r['updates'] / r['seconds'] for r in par]
    print(f"| run | processes x threads | updates/s (each) | updates/s (total) | ratio to alone |\n|---|---|---|---:|---:|\n"
          f"| alone | 1 x {a.threads} | {rate_alone:.2f} | {rate_alone:.2f} | 1.00x |\n"
          f"| parallel | {a.threads} x 1 | {', '.join(f'{r:.2f}' for r in rates)} | {sum(rates):.2f} | "
          f"{sum(rates) / rate_alone:.2f}x |")


if __name__ == '__main__':
    main()
