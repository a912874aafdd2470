"""Training patches per second from the HDF5 cache vs from PNG decoding, measured in the same run.

    .venv/bin/python benchmarks/bench_data.py                    # shipped T91_min192, x2, 48x48 LR patches
    .venv/bin/python benchmarks/bench_data.py --set 291 --scale 4 --samples 400

Both readers draw the same sample keys (same images, crops, flips), one process, no DataLoader workers.
`precomputed` isolates the I/O (the LR patch is cropped from a whole-image LR: from the cache, or kept in
memory when there is no cache); `fly` adds the per-patch MATLAB bicubic `imresize` the authors train with.
The cache is built in a temporary folder (its build time is printed, not counted).
"""
import argparse, sys, tempfile, time
from pathlib import Path

import torch
from ikm_nb.data import SRPatches, PatchSampler, find_train_set


def rate(ds, keys):
    ds[keys[0]]                                   # warm up (opens the HDF5 file, fills the resize caches)
    t = time.perf_counter()
    for k in keys: ds[k]
    return len(keys) / (time.perf_counter() - t)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--set', default='T91_min192', help="training set name or folder (default: the shipped T91_min192)")
    ap.add_argument('--scale', type=int, default=2)
    ap.add_argument('--patch', type=int, default=48)
    ap.add_argument('--samples', type=int, default=200, help='patches timed per reader and mode')
    ap.add_argument('--modes', default='precomputed,fly')
    a = ap.parse_args(argv)
    images = find_train_set(a.set) if not Path(a.set).is_dir() else a.set
    print(f"set {a.set}, x{a.scale}, {a.patch}x{a.patch} LR patches, {a.samples} samples per reader; "
          f"torch threads {torch.get_num_threads()}")
    with tempfile.TemporaryDirectory() as tmp:
        for mode in a.modes.split(','):
            t = time.perf_counter()
            cached = SRPatches(images, a.scale, a.patch, lr_mode=mode, cache=Path(tmp), progress=False)
            build = time.perf_counter() - t
            decoded = SRPatches(images, a.scale, a.patch, lr_mode=mode, cache=False)
            keys = list(PatchSampler(len(cached.index), a.samples, seed=0))
            assert all(torch.equal(x, y) for x, y in zip(cached[keys[1]], decoded[keys[1]]))   # same samples
            r_h5, r_png = rate(cached, keys), rate(decoded, keys)
            size = cached.cache.stat().st_size / 2**20
            print(f"lr_mode={mode:<11}  h5 cache {r_h5:8.1f} patches/s   PNG decoding {r_png:7.1f} patches/s   "
                  f"ratio {r_h5 / r_png:5.1f}x   (cache: {len(cached.files)} images, {size:.0f} MiB, built in {build:.1f} s)")


if __name__ == '__main__':
    sys.exit(main())
