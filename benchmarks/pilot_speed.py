"""Pilot of the IKM study (`nbs/table3_ikm_study.ipynb`): seconds per training update of Table III's U-HDB and RB (one block) at the
widths the study may use, vanilla and +IKM, fp32 and bf16 autocast, one CPU thread, batch 16 of 48x48 LR patches (x2).

    .venv/bin/python benchmarks/pilot_speed.py [--backbones uhdb rb] [--channels 16 32] [--updates 6]

Prints one line per setting and the bf16 / fp32 ratio measured in the same run. Timings only: no claim rests on a time."""
import argparse, time
import torch, torch.nn.functional as F
from ikm_nb.train import TrainConfig, build_model, _amp
from ikm_nb.arch import TABLE3_BACKBONES, TABLE3_VARIANTS

def seconds_per_update(backbone, channels, variant, amp, updates, batch=16, patch=48):
    growth = max(channels * 12 // 64, 2) if backbone != 'rb' else None
    cfg = TrainConfig(arch='uhdn', **{**TABLE3_BACKBONES[backbone], 'channels': channels},
                      **({'growth': growth} if growth else {}), **TABLE3_VARIANTS[variant], amp=amp, batch=batch, patch=patch)
    torch.manual_seed(0)
    model = build_model(cfg).to(memory_format=torch.channels_last).train()
    opt = torch.optim.Adam(model.parameters(), 1e-4)
    ctx = _amp(cfg, torch.device('cpu'), False)
    x = torch.rand(batch, 3, patch, patch).contiguous(memory_format=torch.channels_last)
    y = torch.rand(batch, 3, 2 * patch, 2 * patch).contiguous(memory_format=torch.channels_last)
    return median_update_seconds(model, opt, ctx, x, y, updates), sum(p.numel() for p in model.parameters())

def median_update_seconds(model, opt, ctx, x, y, updates):
    "Median seconds of `updates` updates (forward under `ctx`, L1, backward, `opt` step) of `model` on x -> y, after two warm-ups."
    times = []
    for i in range(updates + 2):
        t0 = time.perf_counter()
        with ctx: sr = model(x)
        loss = F.l1_loss(sr.float(), y); opt.zero_grad(); loss.backward(); opt.step()
        times.append(time.perf_counter() - t0)
    return sorted(times[2:])[len(times[2:]) // 2]

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--backbones', nargs='+', default=['uhdb', 'rb']); ap.add_argument('--channels', nargs='+', type=int, default=[16, 32])
    ap.add_argument('--updates', type=int, default=6); ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--csv', default=None, help='also write the rows to this CSV file')
    a = ap.parse_args()
    rows = []
    torch.set_num_threads(a.threads)
    for b in a.backbones:
        for c in a.channels:
            for v in ('none', 'ikm'):
                t32, n = seconds_per_update(b, c, v, 'off', a.updates)
                t16, _ = seconds_per_update(b, c, v, 'bf16', a.updates)
                print(f"{b:5s} C={c:3d} {v:5s} {n:8,d} params: fp32 {t32:.3f} s/update, bf16 {t16:.3f} s/update ({t32 / t16:.2f}x)",
                      flush=True)
                rows.append(dict(backbone=b, channels=c, variant=v, params=n, fp32_s_per_update=round(t32, 3),
                                 bf16_s_per_update=round(t16, 3), bf16_speedup=round(t32 / t16, 2), threads=a.threads))
    if a.csv:
        import pandas as pd
        pd.DataFrame(rows).to_csv(a.csv, index=False)
