"""Inference of an exported U-HDN+IKM (`torch.export`, dynamic height and width) against the eager network, on the CPU.

    .venv/bin/python benchmarks/export_speed.py [--threads 1] [--size 120 90] [--repeats 5] [--weights shipped]

Exports the network once (timed), checks that the exported program's output equals the eager one on this image, then times
both, rounds interleaved, and prints the medians and the ratio exported / eager measured in the same run. While exporting, the
IKM layers run the reference path (`01_ikm`); eagerly they run the fast path. Timings only: no claim rests on a time."""
import argparse, statistics, time
import torch
from ikm_nb.arch import uhdn

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--threads', type=int, default=1, help='torch CPU threads (default 1)')
    ap.add_argument('--size', type=int, nargs=2, default=(120, 90), metavar=('W', 'H'), help='LR image size (default 120 90)')
    ap.add_argument('--repeats', type=int, default=5, help='timed rounds of each (default 5)')
    ap.add_argument('--weights', default='shipped', help="'shipped' (U-HDN+IKM x2) or 'fresh' (random weights, same network)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    net = uhdn(scale=2, weights='shipped') if a.weights == 'shipped' else uhdn(scale=2).eval()
    w, h = a.size
    x = torch.rand(1, 3, h, w)
    dims = {2: torch.export.Dim('height', min=8, max=4096), 3: torch.export.Dim('width', min=8, max=4096)}
    t0 = time.perf_counter()
    program = torch.export.export(net, (torch.rand(1, 3, 48, 40),), dynamic_shapes=(dims,)).module()
    t_export = time.perf_counter() - t0
    with torch.no_grad():
        diff = (program(x) - net(x)).abs().max().item()
        times = {'eager': [], 'exported': []}
        for _ in range(a.repeats):
            for name, f in (('eager', net), ('exported', program)):
                t0 = time.perf_counter(); f(x); times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"U-HDN+IKM x2 ({a.weights} weights), LR {w}x{h}, {a.threads} thread(s), {a.repeats} rounds; torch {torch.__version__}")
    print(f"export: {t_export:.1f} s; largest |exported - eager| on this image: {diff:.2e}")
    print(f"inference median: eager {1e3 * med['eager']:.0f} ms, exported {1e3 * med['exported']:.0f} ms, "
          f"ratio exported / eager {med['exported'] / med['eager']:.2f}")
