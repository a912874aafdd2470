"""ikm_nb.data: image IO against bad input, the data layout, the HDF5 cache, seeded (LR, HR) patches."""
import csv, os, shutil, struct, zlib, warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ikm_nb.data as D
from ikm_nb.data import (ImageReadError, ImageTooLargeError, DataNotFoundError, load_image, save_image, image_size,
                         to_rgb, check_scale, find_benchmark, find_train_set, list_images, ensure_cache,
                         build_cache, cache_staleness, read_cached, SRPatches, make_loader, Normalize, PatchSampler,
                         dihedral, benchmark_pairs, verify_manifest, DF2K_MEAN, DF2K_STD)
from ikm_nb.resize import imresize, modcrop


# ---------------------------------------------------------------- helpers
def png_bytes(arr, bitdepth, color_type, width=None, height=None, idat=True):
    "A PNG written by hand: 16-bit images PIL cannot write, or a header claiming any size."
    h, w = arr.shape[:2]
    width, height = width or w, height or h
    def chunk(t, d): return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d) & 0xffffffff)
    a = arr.astype('>u2' if bitdepth == 16 else 'u1')
    raw = b''.join(b'\x00' + a[i].tobytes() for i in range(h))
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, bitdepth, color_type, 0, 0, 0))
            + (chunk(b'IDAT', zlib.compress(raw)) if idat else b'') + chunk(b'IEND', b''))

def rand_img(h, w, c=3, seed=0):
    a = np.random.default_rng(seed).integers(0, 256, (h, w, c), dtype=np.uint8)
    return a[..., 0] if c == 1 else a

@pytest.fixture
def tiny_set(tmp_path):
    "Four small RGB PNGs and one grayscale, all large enough for 16x16 LR patches at x4."
    d = tmp_path / 'tiny'; d.mkdir()
    for i, (h, w) in enumerate([(70, 90), (80, 66), (96, 96), (65, 100)]):
        Image.fromarray(rand_img(h, w, seed=i)).save(d / f'im{i}.png')
    Image.fromarray(rand_img(72, 72, c=1, seed=9)).save(d / 'gray.png')
    return d


# ---------------------------------------------------------------- real images
def test_real_images_shapes(shared_data):
    rows = list(csv.DictReader(open(shared_data / 'MANIFEST.tsv'), delimiter='\t'))
    for r in rows:
        if r['set'] not in ('Set5', 'Set14'): continue
        img = load_image(shared_data / r['set'] / r['file'])
        c = 1 if r['mode'] == 'L' else 3
        assert img.dtype == torch.uint8
        assert tuple(img.shape) == (c, int(r['height']), int(r['width'])), r['file']
        assert image_size(shared_data / r['set'] / r['file']) == (int(r['height']), int(r['width']))
    bridge = load_image(shared_data / 'Set14' / 'bridge.png')
    assert bridge.shape == (1, 512, 512)                                  # the grayscale bridge stays one channel
    assert torch.equal(to_rgb(bridge), bridge.expand(3, -1, -1))          # the model gets it replicated
    assert torch.equal(load_image(shared_data / 'Set14' / 'bridge.png'),
                       torch.from_numpy(np.array(Image.open(shared_data / 'Set14' / 'bridge.png')))[None])

def test_benchmark_pairs_match_matlab(shared_data):
    for stem, lr, hr in benchmark_pairs('Set14', 3):
        assert hr.shape[-2] % 3 == 0 and hr.shape[-1] % 3 == 0
        ref = load_image(shared_data / 'matlab_bicubic_LR' / 'Set14' / 'x3' / f'{stem}_LRBI_x3.png')
        if stem == 'bridge':        # grayscale stays one channel; MATLAB's reference was made on 3 replicated channels
            assert lr.shape[0] == 1 and torch.equal(to_rgb(lr), ref)
        else: assert torch.equal(lr, ref), stem
        break


# ---------------------------------------------------------------- bad input
def test_missing_empty_folder_and_non_images(tmp_path):
    with pytest.raises(FileNotFoundError, match='no such image file'): load_image(tmp_path / 'nope.png')
    with pytest.raises(ImageReadError, match='is a folder'): load_image(tmp_path)
    (tmp_path / 'empty.png').write_bytes(b'')
    with pytest.raises(ImageReadError, match=r'empty \(0 bytes\)'): load_image(tmp_path / 'empty.png')
    (tmp_path / 'page.png').write_text('<html><body>404 Not Found</body></html>')
    with pytest.raises(ImageReadError, match='not an image file') as e: load_image(tmp_path / 'page.png')
    assert 'page.png' in str(e.value)                                     # the message names the file
    with pytest.raises(ImageReadError, match='not an image file'): image_size(tmp_path / 'page.png')

def test_truncated_and_corrupt(tmp_path):
    Image.fromarray(rand_img(64, 64)).save(tmp_path / 'a.png')
    b = (tmp_path / 'a.png').read_bytes()
    (tmp_path / 'cut.png').write_bytes(b[:len(b) // 2])
    with pytest.raises(ImageReadError, match='truncated or corrupt') as e: load_image(tmp_path / 'cut.png')
    assert 'cut.png' in str(e.value)
    bad = bytearray(b); bad[len(b) // 2] ^= 0xFF                          # a flipped byte inside IDAT
    (tmp_path / 'flip.png').write_bytes(bytes(bad))
    with pytest.raises(ImageReadError, match='truncated or corrupt'): load_image(tmp_path / 'flip.png')
    Image.fromarray(rand_img(64, 64)).save(tmp_path / 'a.jpg', quality=90)
    j = (tmp_path / 'a.jpg').read_bytes()
    (tmp_path / 'cut.jpg').write_bytes(j[:len(j) // 2])
    with pytest.raises(ImageReadError, match='truncated or corrupt'): load_image(tmp_path / 'cut.jpg')

def test_alpha_policies(tmp_path):
    a = np.zeros((3, 3, 4), np.uint8); a[..., 0] = 200; a[..., 1] = 100; a[..., 3] = 0
    a[0, 0, 3] = 255; a[1, 1, 3] = 51                                   # opaque, 20 % opaque, transparent
    Image.fromarray(a).save(tmp_path / 'rgba.png')
    drop = load_image(tmp_path / 'rgba.png')
    assert drop.shape == (3, 3, 3) and drop[:, 2, 2].tolist() == [200, 100, 0]      # colour as stored
    white = load_image(tmp_path / 'rgba.png', alpha='white')
    black = load_image(tmp_path / 'rgba.png', alpha='black')
    assert white[:, 2, 2].tolist() == [255, 255, 255] and black[:, 2, 2].tolist() == [0, 0, 0]
    assert white[:, 0, 0].tolist() == black[:, 0, 0].tolist() == [200, 100, 0]     # opaque pixels unchanged
    assert black[:, 1, 1].tolist() == [40, 20, 0]                                   # 200 * 51/255, 100 * 51/255
    assert white[:, 1, 1].tolist() == [244, 224, 204]                               # + 255 * 204/255
    with pytest.raises(ImageReadError, match="transparent pixels; pass alpha="): load_image(tmp_path / 'rgba.png', alpha='error')
    a[..., 3] = 255; Image.fromarray(a).save(tmp_path / 'opaque.png')
    assert load_image(tmp_path / 'opaque.png', alpha='error').shape == (3, 3, 3)
    with pytest.raises(ValueError, match='alpha='): load_image(tmp_path / 'opaque.png', alpha='grey')
    la = np.stack([np.full((2, 2), 90, np.uint8), np.array([[255, 0], [0, 0]], np.uint8)], -1)
    Image.fromarray(la, 'LA').save(tmp_path / 'la.png')
    assert load_image(tmp_path / 'la.png').shape == (1, 2, 2)                       # LA -> one channel
    assert load_image(tmp_path / 'la.png', alpha='white')[0].tolist() == [[90, 255], [255, 255]]

def test_palette_bilevel_cmyk(tmp_path):
    rgb = rand_img(8, 8)
    p = Image.fromarray(rgb).quantize(16)
    p.save(tmp_path / 'p.png')
    got = load_image(tmp_path / 'p.png')
    assert got.shape == (3, 8, 8)
    assert torch.equal(got, torch.from_numpy(np.array(p.convert('RGB'))).permute(2, 0, 1))
    p.info['transparency'] = 0; p.save(tmp_path / 'pt.png', transparency=0)
    assert load_image(tmp_path / 'pt.png').shape == (3, 8, 8)                       # palette + transparency -> RGB
    Image.fromarray(rand_img(8, 8, 1) > 127).save(tmp_path / 'bw.png')
    bw = load_image(tmp_path / 'bw.png')
    assert bw.shape == (1, 8, 8) and set(bw.unique().tolist()) <= {0, 255}
    Image.fromarray(rgb).convert('CMYK').save(tmp_path / 'cmyk.jpg')
    assert load_image(tmp_path / 'cmyk.jpg').shape == (3, 8, 8)

def test_16bit_png(tmp_path):
    g = np.array([[0, 255, 256, 257, 1000, 40000, 65535]], np.uint16)
    (tmp_path / 'g16.png').write_bytes(png_bytes(g, 16, 0))
    (tmp_path / 'c16.png').write_bytes(png_bytes(np.stack([g, g // 2, g], -1), 16, 2))
    want = (g >> 8).astype(np.uint8)                                      # [0, 0, 1, 1, 3, 156, 255]
    got = load_image(tmp_path / 'g16.png')
    assert got.shape == (1, 1, 7) and got[0].numpy().tolist() == want.tolist()
    c = load_image(tmp_path / 'c16.png')                                  # PIL keeps the high byte of colour PNGs
    assert c.shape == (3, 1, 7) and c[0].numpy().tolist() == want.tolist() and c[1].numpy().tolist() == ((g // 2) >> 8).tolist()

def test_32bit_refused(tmp_path):
    Image.fromarray(np.zeros((4, 4), np.float32)).save(tmp_path / 'f.tif')
    with pytest.raises(ImageReadError, match='floating-point'): load_image(tmp_path / 'f.tif')
    Image.fromarray(np.zeros((4, 4), np.int32)).save(tmp_path / 'i.tif')
    with pytest.raises(ImageReadError, match='32-bit integer'): load_image(tmp_path / 'i.tif')

def test_decompression_bombs(tmp_path):
    Image.fromarray(rand_img(40, 50)).save(tmp_path / 'ok.png')
    with pytest.raises(ImageTooLargeError, match='2,000 pixels exceeds the limit of 1,000'):
        load_image(tmp_path / 'ok.png', max_pixels=1000)
    # headers claiming absurd sizes; nothing is decoded (the files are a few hundred bytes)
    one = np.zeros((1, 1), np.uint8)
    (tmp_path / 'bomb_pil.png').write_bytes(png_bytes(one, 8, 0, width=100_000, height=100_000))
    with pytest.raises(ImageTooLargeError, match='decompression bomb') as e: load_image(tmp_path / 'bomb_pil.png')
    assert isinstance(e.value.__cause__, Image.DecompressionBombError)   # PIL's own error, handled
    (tmp_path / 'bomb_ours.png').write_bytes(png_bytes(one, 8, 0, width=12_000, height=12_000))  # PIL only warns here
    with warnings.catch_warnings():
        warnings.simplefilter('error')                                    # and no warning escapes
        with pytest.raises(ImageTooLargeError, match='144,000,000 pixels exceeds'): load_image(tmp_path / 'bomb_ours.png')
        with pytest.raises(ImageTooLargeError): image_size(tmp_path / 'bomb_ours.png')

def test_unsupported_scale(tiny_set):
    for s in (1, 5, 8, 2.0, '2', True, None):
        with pytest.raises(ValueError, match='not supported'): check_scale(s)
    assert [check_scale(s) for s in (2, 3, 4, np.int64(3))] == [2, 3, 4, 3]
    with pytest.raises(ValueError, match='use 2, 3 or 4'): SRPatches(tiny_set, scale=5, cache=False)
    with pytest.raises(ValueError, match='use 2, 3 or 4'): next(benchmark_pairs('Set5', 8))
    with pytest.raises(ValueError, match='use 2, 3 or 4'): build_cache([], tiny_set / 'c.h5', lr_scales=[8])


# ---------------------------------------------------------------- saving
def test_save_roundtrip_and_refusals(tmp_path):
    rgb = torch.from_numpy(rand_img(9, 7)).permute(2, 0, 1).contiguous()
    gray = torch.from_numpy(rand_img(9, 7, 1))[None]
    assert torch.equal(load_image(save_image(rgb, tmp_path / 'a.png')), rgb)
    assert torch.equal(load_image(save_image(gray, tmp_path / 'g.png')), gray)
    assert torch.equal(load_image(save_image(gray[0], tmp_path / 'g2.png')), gray)          # (H, W) accepted
    flat = torch.full((3, 16, 16), 120, dtype=torch.uint8)
    j = load_image(save_image(flat, tmp_path / 'a.JPEG'))
    assert j.shape == (3, 16, 16) and (j.int() - 120).abs().max() <= 2
    with pytest.raises(TypeError, match='quantise first'): save_image(rgb.float(), tmp_path / 'f.png')
    with pytest.raises(ValueError, match='C = 1 or 3'): save_image(torch.zeros(4, 5, 5, dtype=torch.uint8), tmp_path / 'x.png')
    with pytest.raises(ValueError, match='unsupported suffix'): save_image(rgb, tmp_path / 'x.webp')
    with pytest.raises(TypeError, match='torch tensor'): save_image(rand_img(4, 4), tmp_path / 'x.png')

def test_save_is_atomic(tmp_path, monkeypatch):
    old = torch.zeros(3, 4, 4, dtype=torch.uint8)
    save_image(old, tmp_path / 'a.png')
    before = (tmp_path / 'a.png').read_bytes()
    def broken_save(self, fp, *a, **k):
        Path(fp).write_bytes(b'\x89PNG half'); raise OSError('disk full')
    monkeypatch.setattr(Image.Image, 'save', broken_save)
    with pytest.raises(OSError, match='disk full'): save_image(old + 1, tmp_path / 'a.png')
    assert (tmp_path / 'a.png').read_bytes() == before                    # the earlier file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ['a.png']        # and no temporary file is left


# ---------------------------------------------------------------- layout
def test_find_benchmarks():
    s5 = find_benchmark('Set5')
    assert len(s5) == 5 and s5.files[0].name == 'baby.png'
    assert D.data_dir() / 'benchmarks' / 'Set5' in s5.folders            # the shipped copy comes first
    assert len(find_benchmark('set14')) == 14

def test_find_benchmark_shared_and_errors(shared_data, tmp_path):
    assert len(find_benchmark('B100')) == 100 and find_benchmark('B100').name == 'BSD100'
    with pytest.raises(DataNotFoundError, match=r"download_benchmark\('Urban100'\)"): find_benchmark('Urban100', roots=[tmp_path])
    (tmp_path / 'benchmarks' / 'Manga109').mkdir(parents=True)
    with pytest.raises(DataNotFoundError, match='holds no images'): find_benchmark('Manga109', roots=[tmp_path])
    with pytest.raises(DataNotFoundError, match='no such folder'): list_images(tmp_path / 'nothing')
    own = tmp_path / 'mine'; own.mkdir(); Image.fromarray(rand_img(8, 8)).save(own / 'x.png')
    (own / 'notes.txt').write_text('not an image'); (own / '.hidden.png').write_bytes(b'')
    assert [f.name for f in find_benchmark(str(own)).files] == ['x.png']  # any folder of HR images

def _fake_set(folder, n):
    folder.mkdir(parents=True)
    for i in range(n): (folder / f'{i:06d}.png').write_bytes(b'x')       # listing only: never decoded here

def test_find_train_set_order(tmp_path):
    r = tmp_path
    _fake_set(r / 'train' / 'T91', 91)
    assert find_train_set(roots=[r]).name == 'T91'
    _fake_set(r / 'BSD200', 200)
    s = find_train_set(roots=[r])
    assert s.name == '291' and len(s) == 291
    _fake_set(r / 'DIV2K_train_HR', 800); _fake_set(r / 'Flickr2K' / 'Flickr2K_HR', 2649)   # one image short
    with pytest.warns(UserWarning, match='holds 2649 images, a complete Flickr2K has 2650'):
        assert find_train_set(roots=[r]).name == '291'                   # auto falls back
    with pytest.raises(DataNotFoundError, match='incomplete'): find_train_set('DF2K', roots=[r])
    (r / 'Flickr2K' / 'Flickr2K_HR' / '999999.png').write_bytes(b'x')
    s = find_train_set(roots=[r])
    assert s.name == 'DF2K' and len(s) == 3450 and s.files[0].parent.name == 'DIV2K_train_HR'
    assert len(find_train_set('DIV2K', roots=[r])) == 800
    with pytest.raises(DataNotFoundError, match='unknown training set'): find_train_set('ImageNet', roots=[r])

def test_no_training_data(tmp_path):
    with pytest.raises(DataNotFoundError, match='no training set found'): find_train_set(roots=[tmp_path])
    with pytest.raises(DataNotFoundError, match='not found'): find_train_set('291', roots=[tmp_path])

def test_shipped_data_found_without_shared_data_even_in_ci(tmp_path, monkeypatch):
    monkeypatch.setenv('IKM_SHARED_DATA', str(tmp_path / 'absent')); monkeypatch.setenv('CI', 'true')
    assert D.data_roots() == [D.data_dir()]
    assert len(find_benchmark('Set14')) == 14 and len(find_benchmark('BSD100')) == 100
    assert find_train_set().name == '291' and len(find_train_set('291')) == 291   # T91 + BSD200, both shipped
    with pytest.raises(DataNotFoundError, match=r"training set 'DIV2K' not found \(DIV2K missing under data\).*download it"):
        find_train_set('DIV2K')                                           # named, missing: an error, never another set
    with pytest.raises(DataNotFoundError, match=r"looked in data/benchmarks/Urban100, data/Urban100\).*download_benchmark"):
        find_benchmark('Urban100')                                        # paths shown relative to the repository

def test_default_training_set_works_offline():
    s = find_train_set()
    assert s.name in ('DF2K', '291', 'T91') and len(s) >= 91

def test_shipped_manifest(tmp_path):
    assert verify_manifest() == 5 + 14 + 100 + 91 + 200                   # Set5, Set14, BSD100, T91, BSD200
    sizes = sum(f.stat().st_size for f in (D.data_dir()).rglob('*') if f.suffix in ('.png', '.webp')
                and 'cache' not in f.parts and 'downloads' not in f.parts)
    assert sizes < 65e6                                                   # the shipped data stays small (63.7 MB: data/README.md)
    copy = tmp_path / 'data'
    shutil.copytree(D.data_dir() / 'benchmarks' / 'Set5', copy / 'benchmarks' / 'Set5')
    lines = (D.data_dir() / 'MANIFEST.tsv').read_text().splitlines()
    (copy / 'MANIFEST.tsv').write_text('\n'.join([lines[0]] + [l for l in lines if l.startswith('benchmarks/Set5/')]) + '\n')
    assert verify_manifest(copy / 'MANIFEST.tsv') == 5
    b = bytearray((copy / 'benchmarks/Set5/bird.png').read_bytes()); b[-20] ^= 1
    (copy / 'benchmarks/Set5/bird.png').write_bytes(bytes(b))
    Image.fromarray(rand_img(4, 4)).save(copy / 'benchmarks/Set5/extra.png')
    with pytest.raises(ValueError, match='sha256 differs: benchmarks/Set5/bird.png.*not in the manifest: benchmarks/Set5/extra.png'):
        verify_manifest(copy / 'MANIFEST.tsv')


# ---------------------------------------------------------------- cache
def test_cache_build_is_atomic(tiny_set, tmp_path, monkeypatch):
    files = list_images(tiny_set)
    good = ensure_cache(files, 'tiny', cache_dir=tmp_path / 'cache', progress=False)
    before, mtime = good.read_bytes(), good.stat().st_mtime_ns
    real = D.load_image
    calls = []
    def failing(f, *a, **k):
        calls.append(f)
        if len(calls) == 3: raise ImageReadError(f'{f}: simulated failure mid-build')
        return real(f, *a, **k)
    monkeypatch.setattr(D, 'load_image', failing)
    with pytest.raises(ImageReadError, match='simulated'): build_cache(files, tmp_path / 'cache' / 'tiny.h5', progress=False)
    assert good.read_bytes() == before and good.stat().st_mtime_ns == mtime           # earlier cache untouched
    with pytest.raises(ImageReadError, match='simulated'):
        calls.clear(); build_cache(files, tmp_path / 'cache' / 'new.h5', progress=False)
    assert sorted(p.name for p in (tmp_path / 'cache').iterdir()) == ['tiny.h5']      # no half-written file
    calls.clear()
    monkeypatch.setattr(D, 'load_image', lambda f, *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()) if f.name == 'im2.png' else real(f))
    with pytest.raises(KeyboardInterrupt): build_cache(files, tmp_path / 'cache' / 'new.h5', progress=False)
    assert sorted(p.name for p in (tmp_path / 'cache').iterdir()) == ['tiny.h5']

def test_cache_refuses_when_disk_is_short(tiny_set, tmp_path, monkeypatch):
    class Usage: free = 10_000
    monkeypatch.setattr(D.shutil, 'disk_usage', lambda p: Usage)
    with pytest.raises(OSError, match=r'needs about .* GiB free.*cache=False'):
        build_cache(list_images(tiny_set), tmp_path / 'c.h5', progress=False)
    assert not (tmp_path / 'c.h5').exists()
    (tiny_set / 'bad.png').write_text('not an image')                   # headers are read before the long part
    monkeypatch.undo()
    with pytest.raises(ImageReadError, match='bad.png: not an image file'):
        build_cache(list_images(tiny_set), tmp_path / 'c.h5', progress=False)

def test_cache_contents_and_progress(tiny_set, tmp_path, capsys):
    files = list_images(tiny_set)
    c = ensure_cache(files, 'tiny', lr_scales=[3], cache_dir=tmp_path, progress=True)
    assert 'caching tiny.h5' in capsys.readouterr().err                               # tqdm progress bar
    assert c == tmp_path / 'tiny.h5'
    for i, f in enumerate(files):
        assert torch.equal(read_cached(c, i), load_image(f))
        assert torch.equal(read_cached(c, i, 'lr_x3'), imresize(modcrop(load_image(f), 3), 1 / 3))
    assert read_cached(c, files.index(tiny_set / 'gray.png')).shape[0] == 1         # grayscale stays one channel
    m = c.stat().st_mtime_ns
    assert ensure_cache(files, 'tiny', lr_scales=[3], cache_dir=tmp_path, progress=False) == c
    assert c.stat().st_mtime_ns == m                                                  # fresh: not rebuilt

def test_stale_cache_detected_and_rebuilt(tiny_set, tmp_path):
    files = list_images(tiny_set)
    c = ensure_cache(files, 'tiny', lr_scales=[2], cache_dir=tmp_path, progress=False)
    new = rand_img(70, 90, seed=42)
    Image.fromarray(new).save(tiny_set / 'im0.png')                                   # a source image changes
    os.utime(tiny_set / 'im0.png', ns=(1, 1))
    assert 'source image(s) changed' in cache_staleness(c, files, [2])
    with pytest.warns(UserWarning, match='changed since it was built.*rebuilding'):
        ensure_cache(files, 'tiny', cache_dir=tmp_path, progress=False)
    assert torch.equal(read_cached(c, files.index(tiny_set / 'im0.png')), torch.from_numpy(new).permute(2, 0, 1))
    assert cache_staleness(c, files) is None
    with pytest.warns(UserWarning, match='no LR images at x4'):
        ensure_cache(files, 'tiny', lr_scales=[4], cache_dir=tmp_path, progress=False)
    Image.fromarray(rand_img(50, 50)).save(tiny_set / 'im9.png')                      # a new image
    assert '(5 images cached, 6 now)' in cache_staleness(c, list_images(tiny_set))
    c.write_bytes(b'not hdf5')                                                        # a damaged cache
    assert cache_staleness(c, files).startswith('unreadable')
    with pytest.warns(UserWarning, match='unreadable'): ensure_cache(files, 'tiny', cache_dir=tmp_path, progress=False)
    assert torch.equal(read_cached(c, 1), load_image(files[1]))


# ---------------------------------------------------------------- patches
@pytest.mark.parametrize('scale', [2, 3, 4])
def test_patch_pairing_fly(tiny_set, tmp_path, scale):
    p = 16
    ds = SRPatches(tiny_set, scale=scale, patch=p, cache=tmp_path, progress=False, length=24)
    seen = set()
    for k in range(len(ds)):
        lr, hr = ds[k]
        assert lr.shape == (3, p, p) and hr.shape == (3, p * scale, p * scale) and lr.dtype == hr.dtype == torch.uint8
        q = ds.sample_params(k)
        crop = load_image(ds.files[q['image']])[:, q['y']:q['y'] + p * scale, q['x']:q['x'] + p * scale]
        assert torch.equal(hr, to_rgb(dihedral(crop, q['flip'], q['rot'])))
        assert torch.equal(lr, to_rgb(dihedral(imresize(crop, 1 / scale), q['flip'], q['rot'])))  # same transform on both
        seen.add((q['flip'], q['rot']))
    assert len(seen) >= 5                                                 # the augmentations do vary
    plain = SRPatches(tiny_set, scale=scale, patch=p, augment=False, cache=tmp_path, progress=False)
    for k in range(len(plain)):
        lr, hr = plain[k]
        assert torch.equal(lr, imresize(hr, 1 / scale))                   # without augmentation: LR = imresize(HR patch)

def test_patch_pairing_precomputed_and_no_cache(tiny_set, tmp_path):
    s, p = 3, 12
    ds = SRPatches(tiny_set, scale=s, patch=p, lr_mode='precomputed', cache=tmp_path, progress=False, length=12)
    mem = SRPatches(tiny_set, scale=s, patch=p, lr_mode='precomputed', cache=False, length=12)
    for k in range(len(ds)):
        q = ds.sample_params(k)
        assert q['y'] % s == 0 and q['x'] % s == 0
        img = load_image(ds.files[q['image']])
        whole = imresize(modcrop(img, s), 1 / s)
        lr, hr = ds[k]
        y, x = q['y'], q['x']
        assert torch.equal(lr, to_rgb(dihedral(whole[:, y // s:y // s + p, x // s:x // s + p], q['flip'], q['rot'])))
        assert torch.equal(hr, to_rgb(dihedral(img[:, y:y + p * s, x:x + p * s], q['flip'], q['rot'])))
        lr2, hr2 = mem[k]
        assert torch.equal(lr, lr2) and torch.equal(hr, hr2)              # cache or not, the same samples
    fly_c = SRPatches(tiny_set, scale=2, patch=p, cache=tmp_path, progress=False)
    fly_f = SRPatches(tiny_set, scale=2, patch=p, cache=False)
    assert all(torch.equal(fly_c[(j, 77)][0], fly_f[(j, 77)][0]) for j in range(len(fly_c.index)))

def test_grayscale_training_image_becomes_rgb(tmp_path):
    d = tmp_path / 'g'; d.mkdir()
    Image.fromarray(rand_img(40, 40, c=1)).save(d / 'g.png')
    lr, hr = SRPatches(d, scale=2, patch=8, cache=False)[0]
    assert lr.shape == (3, 8, 8) and hr.shape == (3, 16, 16)
    assert torch.equal(hr[0], hr[1]) and torch.equal(hr[1], hr[2]) and torch.equal(lr[0], lr[2])

def test_small_images_skipped_or_refused(tiny_set, tmp_path):
    Image.fromarray(rand_img(30, 200)).save(tiny_set / 'thin.png')       # 30 rows < 48 at x3 with patch 16
    with pytest.warns(UserWarning, match=r"1 of the 6 images of 'tiny' are smaller than the 48x48 HR patch and are skipped: thin.png"):
        ds = SRPatches(tiny_set, scale=3, patch=16, cache=False)
    assert len(ds.index) == 5 and all(ds.sample_params(k)['name'] != 'thin.png' for k in range(len(ds)))
    with pytest.raises(ValueError, match='no image of tiny is at least 192x192'):
        SRPatches(tiny_set, scale=4, patch=48, cache=False)

def test_dataset_argument_errors(tiny_set, tmp_path):
    with pytest.raises(ValueError, match="lr_mode='bicubic'"): SRPatches(tiny_set, lr_mode='bicubic', cache=False)
    with pytest.raises(ValueError, match='positive'): SRPatches(tiny_set, patch=0, cache=False)
    (tmp_path / 'void').mkdir()
    with pytest.raises(DataNotFoundError, match='holds no images'): SRPatches(tmp_path / 'void', cache=False)
    with pytest.raises(DataNotFoundError, match='unknown training set'): SRPatches(str(tmp_path / 'absent'), cache=False)
    with pytest.raises(DataNotFoundError, match='empty'): SRPatches([], cache=False)
    with pytest.raises(IndexError): SRPatches(tiny_set, cache=False, patch=8)[99]

def _batches(loader, n_epochs=1):
    return [[(lr.clone(), hr.clone()) for lr, hr in loader] for _ in range(n_epochs)]

def test_loader_reproducible_across_workers(tiny_set, tmp_path):
    ds = SRPatches(tiny_set, scale=2, patch=12, cache=tmp_path, progress=False)
    kw = dict(batch_size=4, samples_per_epoch=12)
    a = _batches(make_loader(ds, seed=5, workers=0, **kw), 2)
    b = _batches(make_loader(ds, seed=5, workers=2, **kw), 2)
    c = _batches(make_loader(ds, seed=6, workers=0, **kw), 1)
    assert len(a[0]) == 3 and a[0][0][0].shape == (4, 3, 12, 12) and a[0][0][1].shape == (4, 3, 24, 24)
    for ea, eb in zip(a, b):                                              # same seed: identical, with or without workers
        for (la, ha), (lb, hb) in zip(ea, eb): assert torch.equal(la, lb) and torch.equal(ha, hb)
    assert not torch.equal(a[0][0][1], c[0][0][1])                        # another seed, other batches
    assert not torch.equal(a[0][0][1], a[1][0][1])                        # the second epoch differs from the first
    loader = make_loader(ds, seed=5, **kw)
    loader.sampler.set_epoch(1)
    assert torch.equal(next(iter(loader))[1], a[1][0][1])                 # set_epoch resumes an epoch exactly

def test_loader_normalization(tiny_set, tmp_path):
    ds = SRPatches(tiny_set, scale=2, patch=12, cache=tmp_path, progress=False)
    lr_n, hr_n = next(iter(make_loader(ds, batch_size=4, seed=1, normalize=True)))
    lr_r, hr_r = next(iter(make_loader(ds, batch_size=4, seed=1, normalize=False)))
    assert 0 <= lr_r.min() and lr_r.max() <= 1 and lr_r.dtype == torch.float32
    norm = Normalize()
    torch.testing.assert_close(norm.inverse(lr_n), lr_r, atol=1e-6, rtol=0)
    torch.testing.assert_close(norm.inverse(hr_n), hr_r, atol=1e-6, rtol=0)
    torch.testing.assert_close(lr_n[:, 1], (lr_r[:, 1] - DF2K_MEAN[1]) / DF2K_STD[1])
    assert torch.equal(lr_r * 255, (lr_r * 255).round())                 # exact uint8 values
    assert norm.state_dict() == {}                                        # no buffers leak into checkpoints

def test_loader_refuses_empty_epochs(tiny_set):
    with pytest.raises(ValueError, match='every epoch would be empty'):
        make_loader(tiny_set, batch_size=16, samples_per_epoch=8, cache=False, patch=8)

def test_sampler_covers_images_each_pass():
    s = PatchSampler(5, 12, seed=0)
    keys = list(s)
    assert len(keys) == 12 and sorted(j for j, _ in keys[:5]) == [0, 1, 2, 3, 4]
    assert sorted(j for j, _ in keys[5:10]) == [0, 1, 2, 3, 4]
    assert len({sd for _, sd in keys}) == 12
    with pytest.raises(ValueError): PatchSampler(0, 3)

def test_default_loader_uses_training_set(tmp_path, monkeypatch):
    shipped = find_train_set('T91_min192')
    small = D.ImageSet('T91_first3', shipped.files[:3], shipped.folders)
    lr, hr = next(iter(make_loader(small, scale=4, batch_size=2, patch=48, cache=tmp_path, progress=False)))
    assert lr.shape == (2, 3, 48, 48) and hr.shape == (2, 3, 192, 192)   # the paper's patch sizes


def test_shipped_webp_sets_have_the_shared_pixels(shared_data):
    "BSD100 and T91 ship as lossless WebP: every image decodes to exactly the pixels of the shared PNG it was made from."
    for name, shipped in (('BSD100', find_benchmark('BSD100', roots=[D.data_dir()])),
                          ('T91', find_train_set('T91', roots=[D.data_dir()]))):
        assert len(shipped) == len(list((shared_data / name).glob('*.png')))
        for f in shipped.files:
            assert f.suffix == '.webp'
            assert torch.equal(load_image(f), load_image(shared_data / name / f'{f.stem}.png')), f.name
