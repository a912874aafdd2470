"""Training speed of the shipped weights' recipe on a CPU (the `cpu_weights` profile, `scripts/train_cpu_weights.sh`): seconds per
update of the full U-HDN+IKM (batch 16 of 48x48 LR patches) in float32 and under bf16 autocast, and the seconds the data pipeline
takes to make one batch of the 291 images in the same process, each as a ratio against the bf16 update measured in the same run.

    .venv/bin/python benchmarks/cpu_weights_speed.py [--threads 2] [--updates 6] [--scale 2]

Timings only: no claim rests on a time. Run it on an idle machine."""
import argparse, time
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

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--threads', type=int, default=2); ap.add_argument('--updates', type=int, default=6)
    ap.add_argument('--scale', type=int, default=2); ap.add_argument('--batches', type=int, default=50)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg = profile_config('cpu_weights', scale=a.scale)
    t16 = seconds_per_update(cfg, a.updates)
    t32 = seconds_per_update(profile_config('cpu_weights', scale=a.scale, amp='off'), a.updates)
    data = seconds_per_batch(cfg, a.batches)
    print(f"U-HDN+IKM x{a.scale}, batch {cfg.batch} of {cfg.patch}x{cfg.patch}, {a.threads} threads, {torch.__version__}")
    print(f"  bf16 autocast : {t16:.3f} s/update (1.00)")
    print(f"  float32       : {t32:.3f} s/update ({t32 / t16:.2f}x bf16)")
    print(f"  data, 1 batch : {data:.4f} s ({data / t16:.3f}x a bf16 update; made in the training process, workers=0)")
    print(f"  30,000 bf16 updates: about {30_000 * t16 / 3600:.1f} hours")
