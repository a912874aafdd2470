"""Inference of an exported U-HDN+IKM (`torch.export` and ONNX Runtime, dynamic batch, height and width) against the eager
network, on the CPU.

    .venv/bin/python benchmarks/export_speed.py [--threads 1] [--size 120 90] [--repeats 5] [--weights shipped] [--formats pt2 onnx]
                                                [--n-blocks N] [--batch B]

Exports the network once per format with `ikm_nb.evaluate.export_model` (timed; the written file is checked against the eager
network there), checks the loaded program's output on this image, then times eager and exported, rounds interleaved, and prints
the medians and the ratio exported / eager measured in the same run. While exporting, the IKM layers trace their export path
(`01_ikm`, Exporting); eagerly they run the fast path. Timings only: no claim rests on a time."""
import argparse, statistics, tempfile, time
from pathlib import Path
import torch
from ikm_nb.arch import uhdn
from ikm_nb.evaluate import export_model, _run_exported

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--threads', type=int, default=1, help='CPU threads of torch and of ONNX Runtime (default 1)')
    ap.add_argument('--size', type=int, nargs=2, default=(120, 90), metavar=('W', 'H'), help='LR image size (default 120 90)')
    ap.add_argument('--repeats', type=int, default=5, help='timed rounds of each (default 5)')
    ap.add_argument('--weights', default='shipped', help="'shipped' (U-HDN+IKM x2) or 'fresh' (random weights, same network)")
    ap.add_argument('--n-blocks', type=int, default=None,
                    help="U-HDBs of a smaller U-HDN+IKM with fresh weights (same layers, quicker to export); default: the full one")
    ap.add_argument('--batch', type=int, default=None, help="export for this batch only (export_model's batch); default: dynamic")
    ap.add_argument('--formats', nargs='+', default=['pt2', 'onnx'], choices=['pt2', 'onnx'], help='what to export and time')
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.n_blocks: a.weights = 'fresh'
    net = uhdn(scale=2, weights='shipped') if a.weights == 'shipped' else uhdn(scale=2, n_blocks=a.n_blocks or 4).eval()
    w, h = a.size
    x = torch.rand(1, 3, h, w)
    print(f"U-HDN+IKM x2, {a.n_blocks or 4} U-HDBs ({a.weights} weights), LR {w}x{h}, {a.threads} thread(s), {a.repeats} rounds, batch {a.batch or 'dynamic'}; torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as d, torch.no_grad():
        runners, info = {'eager': net}, {}
        for fmt in a.formats:
            r = export_model(net, Path(d) / f'uhdn.{fmt}', scale=2, batch=a.batch)
            runners[r['format']] = _run_exported(Path(r['path']), r['format'], a.threads)
            info[r['format']] = r
            print(f"{r['format']}: exported and checked in {r['seconds']:.0f} s", flush=True)
        want = net(x)
        times = {k: [] for k in runners}
        for _ in range(a.repeats):
            for name, f in runners.items():
                t0 = time.perf_counter(); f(x); times[name].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"eager: {1e3 * med['eager']:.0f} ms per image (median)")
        for name, r in info.items():
            diff = (runners[name](x) - want).abs().max().item()
            print(f"{name}: export {r['seconds']:.0f} s; largest |exported - eager| on this image {diff:.1e}; "
                  f"{1e3 * med[name]:.0f} ms per image, ratio exported / eager {med[name] / med['eager']:.2f}")
