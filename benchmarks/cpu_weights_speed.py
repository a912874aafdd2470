"""Training speed of the shipped weights' recipe on a CPU (the `cpu_weights` profile, `scripts/train_cpu_weights.sh`): seconds per
update of the full U-HDN+IKM (batch 16 of 48x48 LR patches) in float32 and under bf16 autocast, and the seconds the data pipeline
takes to make one batch of the 291 images in the same process, each as a ratio against the bf16 update measured in the same run.
With --side-by-side it measures instead whether two runs at once (x3 and x4, say) get more updates through the machine than one
run on all its threads: one run on --threads threads, then two processes of one thread each at the same time.

    .venv/bin/python benchmarks/cpu_weights_speed.py [--threads 2] [--updates 6] [--scale 2] [--side-by-side]

Timings only: no claim rests on a time. Run it on an idle machine."""
import argparse, os, subprocess, sys, time
import torch
from pilot_speed import median_update_seconds   # benchmarks/: the same timing loop as the study's pilot
from ikm_nb.train import profile_config, build_model, training_patches, StepBatches, _amp

def seconds_per_update(cfg, updates):
    "Median seconds of `updates` training updates of `cfg`'s model on random patches (after two warm-up updates)."
    torch.manual_seed(0)
    model = build_model(cfg).train()
    opt = torch.optim.Adam(model.parameters(), cfg.lr)
    ctx = _amp(cfg, torch.device('cpu'), False)
    x, y = torch.rand(cfg.batch, 3, cfg.patch, cfg.patch), torch.rand(cfg.batch, 3, cfg.scale * cfg.patch, cfg.scale * cfg.patch)
    return median_update_seconds(model, opt, ctx, x, y, updates)

def seconds_per_batch(cfg, batches):
    "Mean seconds to make one training batch (crop, augment, bicubic LR on the fly) from the cached training images."
    ds = StepBatches(training_patches(cfg, progress=False), cfg.batch, cfg.seed)
    ds[0]
    t0 = time.perf_counter()
    for s in range(1, batches + 1): ds[s]
    return (time.perf_counter() - t0) / batches

def side_by_side(a):
    "Print bf16 seconds per update of one run on `a.threads` threads, then of two one-thread runs at once, and the throughputs."
    cfg = profile_config('cpu_weights', scale=a.scale)
    t1 = seconds_per_update(cfg, a.updates)
    cmd = [sys.executable, __file__, '--one', '--threads', '1', '--updates', str(a.updates), '--scale', str(a.scale)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env={**os.environ, 'OMP_NUM_THREADS': '1'})
             for _ in range(2)]
    t2 = [float(p.communicate()[0]) for p in procs]
    if any(p.returncode for p in procs): sys.exit('a side-by-side process failed')
    both = sum(1 / t for t in t2)
    print(f"U-HDN+IKM x{a.scale}, batch {cfg.batch} of {cfg.patch}x{cfg.patch}, bf16 autocast, {torch.__version__}")
    print(f"  one run, {a.threads} threads        : {t1:.3f} s/update, {1 / t1:.3f} updates/s (1.00)")
    print(f"  two runs at once, 1 thread each: {t2[0]:.3f} and {t2[1]:.3f} s/update, {both:.3f} updates/s together "
          f"({both * t1:.2f}x)")

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--threads', type=int, default=2); ap.add_argument('--updates', type=int, default=6)
    ap.add_argument('--scale', type=int, default=2); ap.add_argument('--batches', type=int, default=50)
    ap.add_argument('--side-by-side', action='store_true', help='one run on --threads threads against two one-thread runs at once')
    ap.add_argument('--one', action='store_true', help=argparse.SUPPRESS)   # (a side-by-side process: print its bf16 s/update)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.one: sys.exit(print(seconds_per_update(profile_config('cpu_weights', scale=a.scale), a.updates)))
    if a.side_by_side: sys.exit(side_by_side(a))
    cfg = profile_config('cpu_weights', scale=a.scale)
    t16 = seconds_per_update(cfg, a.updates)
    t32 = seconds_per_update(profile_config('cpu_weights', scale=a.scale, amp='off'), a.updates)
    data = seconds_per_batch(cfg, a.batches)
    print(f"U-HDN+IKM x{a.scale}, batch {cfg.batch} of {cfg.patch}x{cfg.patch}, {a.threads} threads, {torch.__version__}")
    print(f"  bf16 autocast : {t16:.3f} s/update (1.00)")
    print(f"  float32       : {t32:.3f} s/update ({t32 / t16:.2f}x bf16)")
    print(f"  data, 1 batch : {data:.4f} s ({data / t16:.3f}x a bf16 update; made in the training process, workers=0)")
    print(f"  30,000 bf16 updates: about {30_000 * t16 / 3600:.1f} hours")
