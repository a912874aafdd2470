"""Maintainer's script: (re)build what `data/` ships from the shared data folder, and its MANIFEST.tsv.

    .venv/bin/python scripts/ship_data.py [--shared ../shared/data]

Set5 and Set14 ship as the source PNGs; T91 (the cpu profile's training set), BSD100 (its evaluation set) and BSD200
(with T91, the 291 training set) ship as lossless WebP, 27% smaller than PNG with the same pixels (checked here for every image, and by tests/test_data.py against
the shared copies). Each row of MANIFEST.tsv: path, size, colour mode, bytes, sha256 of the shipped file, and the public
source of the pixels (from the shared MANIFEST.tsv).
"""
import argparse, csv, hashlib, io, os
from pathlib import Path
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
SHIP = [  # (shared set, folder under data/, format)
    ('Set5', 'benchmarks/Set5', 'png'), ('Set14', 'benchmarks/Set14', 'png'),
    ('BSD100', 'benchmarks/BSD100', 'webp'), ('T91', 'train/T91', 'webp'), ('BSD200', 'train/BSD200', 'webp')]

def webp_bytes(im: Image.Image) -> bytes:
    b = io.BytesIO(); im.save(b, 'WEBP', lossless=True, quality=100, method=6, exact=True); return b.getvalue()

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--shared', default=str(ROOT.parent / 'shared' / 'data'))
    shared = Path(ap.parse_args().shared)
    src_rows = {(r['set'], r['file']): r for r in csv.DictReader(open(shared / 'MANIFEST.tsv'), delimiter='\t')}
    out = []
    for set_name, rel, fmt in SHIP:
        dest = ROOT / 'data' / rel; dest.mkdir(parents=True, exist_ok=True)
        for (s, f), r in sorted(src_rows.items()):
            if s != set_name: continue
            src = shared / s / f
            im = Image.open(src); im.load()
            if fmt == 'png': data, name, note = src.read_bytes(), f, r['note']
            else:
                if im.mode != 'RGB': raise ValueError(f"{src}: {im.mode}; lossless WebP keeps RGB only")
                data, name = webp_bytes(im), Path(f).stem + '.webp'
                back = Image.open(io.BytesIO(data)).convert('RGB')
                if not np.array_equal(np.asarray(back), np.asarray(im)): raise AssertionError(f"{src}: WebP changed pixels")
                note = '; '.join(x for x in (r['note'], 'lossless WebP of the shared PNG (pixels identical)') if x)
            (dest / name).write_bytes(data)
            out.append(dict(path=f'{rel}/{name}', width=im.width, height=im.height, mode=im.mode, bytes=len(data),
                            sha256=hashlib.sha256(data).hexdigest(), source=r['source'], note=note))
    tmp = ROOT / 'data' / '.MANIFEST.tsv.tmp'
    with open(tmp, 'w', newline='') as fh:
        w = csv.DictWriter(fh, fieldnames=list(out[0]), delimiter='\t', lineterminator='\n'); w.writeheader(); w.writerows(out)
    os.replace(tmp, ROOT / 'data' / 'MANIFEST.tsv')
    print(f"{len(out)} files, {sum(r['bytes'] for r in out) / 2**20:.1f} MiB")

if __name__ == '__main__': main()
