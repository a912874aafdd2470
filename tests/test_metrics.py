"""`ikm_nb.metrics`: Y conversion and SSIM against slow float64 references, the Table I Bicubic row, bad inputs."""
import math
import numpy as np
import pytest
import torch
from PIL import Image
from ikm_nb.resize import imresize, modcrop
from ikm_nb.metrics import psnr, ssim, psnr_ssim, rgb_to_y, ssim_index, to_uint8

ONE_THREAD = True   # many small tensor ops: conftest runs this module on one thread (restored after)

def load(path):
    "uint8 (C, H, W) from a PNG, C = 1 for grayscale; PIL directly (independent of ikm_nb.data)."
    a = np.array(Image.open(path))
    return torch.from_numpy(a).permute(2, 0, 1).contiguous() if a.ndim == 3 else torch.from_numpy(a)[None]

def bicubic(hr, s):
    "Bicubic baseline: LR = imresize(modcrop(HR, s), 1/s), SR = imresize(LR, s)."
    return imresize(imresize(modcrop(hr, s), 1 / s), s)

# ---------------------------------------------------------------- slow float64 references
def ref_y(rgb_hwc_u8, convention):
    "Y of an (H, W, 3) uint8 array, the way each convention's code computes it, in numpy float64."
    if convention == 'matlab':   # MATLAB: rgb2ycbcr(im2double(img)) * 255, coefficients T/255 and offset 16/255
        im = rgb_hwc_u8.astype(np.float64) / 255
        y = 65.481 / 255 * im[..., 0] + 128.553 / 255 * im[..., 1] + 24.966 / 255 * im[..., 2] + 16 / 255
        return y * 255
    # the authors': skimage.color.rgb2ycbcr (which expects [0, 1]) fed 0..255 values, then / 255
    im = rgb_hwc_u8.astype(np.float64)
    return (im @ np.array([65.481, 128.553, 24.966]) + 16) / 255

def fspecial_gaussian(size=11, sigma=1.5):
    x, y = np.meshgrid(np.arange(size) - (size - 1) / 2, np.arange(size) - (size - 1) / 2)
    h = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    h[h < np.finfo(float).eps * h.max()] = 0
    return h / h.sum()

def filter2_valid(w, img):
    "MATLAB filter2(w, img, 'valid'): correlation, one window offset at a time."
    k = w.shape[0]; H, W = img.shape
    out = np.zeros((H - k + 1, W - k + 1))
    for a in range(k):
        for b in range(k): out += w[a, b] * img[a:a + H - k + 1, b:b + W - k + 1]
    return out

def ref_ssim(img1, img2):
    "ssim_index.m (Wang et al. 2004) with its defaults, line by line."
    img1, img2 = img1.astype(np.float64), img2.astype(np.float64)
    w = fspecial_gaussian(); C1 = (0.01 * 255) ** 2; C2 = (0.03 * 255) ** 2
    mu1, mu2 = filter2_valid(w, img1), filter2_valid(w, img2)
    s1 = filter2_valid(w, img1 * img1) - mu1 * mu1
    s2 = filter2_valid(w, img2 * img2) - mu2 * mu2
    s12 = filter2_valid(w, img1 * img2) - mu1 * mu2
    m = ((2 * mu1 * mu2 + C1) * (2 * s12 + C2)) / ((mu1 ** 2 + mu2 ** 2 + C1) * (s1 + s2 + C2))
    return m.mean()

def ref_eval(sr, hr, s, convention):
    "PSNR and SSIM by the references: mod-crop HR, Y (or the grey channel), shave s, float64."
    hr = hr.numpy()[:, :hr.shape[1] - hr.shape[1] % s, :hr.shape[2] - hr.shape[2] % s]
    sr = sr.numpy()
    if hr.shape[0] == 3: y1, y2 = ref_y(sr.transpose(1, 2, 0), convention), ref_y(hr.transpose(1, 2, 0), convention)
    else: y1, y2 = sr[0].astype(np.float64), hr[0].astype(np.float64)
    y1, y2 = y1[s:-s, s:-s], y2[s:-s, s:-s]
    return 10 * np.log10(255 ** 2 / np.mean((y1 - y2) ** 2)), ref_ssim(y1, y2)

# ---------------------------------------------------------------- against the references
@pytest.mark.parametrize('convention', ['matlab', 'paper'])
def test_y_matches_reference(convention):
    rgb = torch.randint(0, 256, (3, 23, 31), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(rgb_to_y(rgb, convention).numpy(), ref_y(rgb.permute(1, 2, 0).numpy(), convention),
                               rtol=0, atol=1e-10)

def test_y_known_values():
    white, black = torch.full((3, 1, 1), 255, dtype=torch.uint8), torch.zeros(3, 1, 1, dtype=torch.uint8)
    assert abs(rgb_to_y(white).item() - 235) < 1e-12 and abs(rgb_to_y(black).item() - 16) < 1e-12
    assert abs(rgb_to_y(black, 'paper').item() - 16 / 255) < 1e-12

def test_ssim_index_matches_reference_random():
    g = torch.Generator().manual_seed(1)
    a = torch.rand(37, 52, generator=g, dtype=torch.float64) * 255
    b = (a + torch.randn(37, 52, generator=g, dtype=torch.float64) * 20).clamp(0, 255)
    assert abs(ssim_index(a, b) - ref_ssim(a.numpy(), b.numpy())) < 1e-12
    assert abs(ssim_index(a, a) - 1) < 1e-12

@pytest.mark.parametrize('name, s', [('butterfly', 4), ('bird', 3), ('bridge', 2), ('baboon', 3)])
@pytest.mark.parametrize('convention', ['matlab', 'paper'])
def test_psnr_ssim_match_reference_on_real_images(shared_data, name, s, convention):
    folder = 'Set5' if (shared_data / 'Set5' / f'{name}.png').exists() else 'Set14'
    hr = load(shared_data / folder / f'{name}.png')
    sr = bicubic(hr, s)
    p, q = ref_eval(sr, hr, s, convention)
    assert abs(psnr(sr, hr, s, convention) - p) < 1e-9
    assert abs(ssim(sr, hr, s, convention) - q) < 1e-10
    assert psnr_ssim(sr, hr, s, convention) == (psnr(sr, hr, s, convention), ssim(sr, hr, s, convention))

def test_conventions(shared_data):
    hr = load(shared_data / 'Set5' / 'butterfly.png'); sr = bicubic(hr, 4)
    assert psnr(sr, hr, 4, 'matlab') == psnr(sr, hr, 4, 'paper')           # PSNR: differences only
    assert 0 < ssim(sr, hr, 4, 'matlab') - ssim(sr, hr, 4, 'paper') < 0.01  # SSIM: the shift lowers it
    gray = load(shared_data / 'Set14' / 'bridge.png'); sr = bicubic(gray, 4)
    assert gray.shape[0] == 1
    assert psnr_ssim(sr, gray, 4, 'matlab') == psnr_ssim(sr, gray, 4, 'paper')  # grey: no conversion
    # one channel, not replicated RGB: that would scale differences by 219/255 (+1.32 dB)
    rgb = psnr(sr.expand(3, -1, -1), gray.expand(3, -1, -1), 4)
    assert abs(rgb - psnr(sr, gray, 4) - 20 * math.log10(255 / 219)) < 1e-9

# ---------------------------------------------------------------- the paper's Table I, Bicubic rows
PAPER_BICUBIC = {  # typed in from the paper's Table I: (PSNR, SSIM)
    ('Set5', 2): (33.64, 0.9292), ('Set14', 2): (30.22, 0.8683), ('BSD100', 2): (29.55, 0.8425),
    ('Set5', 3): (30.40, 0.8686), ('Set14', 3): (27.54, 0.7741), ('BSD100', 3): (27.21, 0.7389),
    ('Set5', 4): (28.42, 0.8101), ('Set14', 4): (25.99, 0.7023), ('BSD100', 4): (25.96, 0.6672),
}
N_IMAGES = {'Set5': 5, 'Set14': 14, 'BSD100': 100}

@pytest.fixture(scope='module')
def bicubic_table(shared_data):
    "Mean bicubic (PSNR, SSIM) per (set, scale) in the 'paper' convention, computed once."
    out = {}
    for name, n in N_IMAGES.items():
        files = sorted((shared_data / name).glob('*.png'))
        assert len(files) == n, f'{name}: {len(files)} images, expected {n}'
        hrs = [load(f) for f in files]
        for s in (2, 3, 4):
            vals = [psnr_ssim(bicubic(hr, s), hr, s, 'paper') for hr in hrs]
            out[name, s] = tuple(np.mean(vals, axis=0))
    return out

@pytest.mark.parametrize('cell', list(PAPER_BICUBIC))
def test_table1_bicubic_row(bicubic_table, cell):
    (p, q), (pp, pq) = bicubic_table[cell], PAPER_BICUBIC[cell]
    assert abs(p - pp) <= 0.05, f'{cell}: PSNR {p:.3f} vs paper {pp}'
    assert abs(q - pq) <= 0.002, f'{cell}: SSIM {q:.4f} vs paper {pq}'

# ---------------------------------------------------------------- devices
@pytest.mark.skipif(not torch.cuda.is_available(), reason='no CUDA device')
def test_cuda_matches_cpu(shared_data):
    hr = load(shared_data / 'Set5' / 'bird.png'); sr = bicubic(hr, 3)
    for c in ('matlab', 'paper'):
        a, b = psnr_ssim(sr, hr, 3, c), psnr_ssim(sr.cuda(), hr.cuda(), 3, c)
        assert abs(a[0] - b[0]) < 1e-9 and abs(a[1] - b[1]) < 1e-10
    assert abs(psnr(sr.cuda(), hr, 3) - psnr(sr, hr, 3)) < 1e-9    # hr follows sr's device

# ---------------------------------------------------------------- inputs
def test_to_uint8():
    assert to_uint8(torch.tensor([0., 0.5, 1.0, -0.2, 1.3])).tolist() == [0, 128, 255, 0, 255]
    assert to_uint8(torch.tensor([2.5, 3.5, 254.5]), rgb_range=255).tolist() == [3, 4, 255]   # ties away from zero
    x = torch.rand(3, 8, 8, dtype=torch.float64)
    assert torch.equal(to_uint8(x), to_uint8(x * 255, rgb_range=255))

def test_accepts_numpy_integral_floats_and_hw():
    hr = torch.randint(0, 256, (1, 24, 24), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    sr = hr.clone(); sr[0, 10, 10] ^= 1
    ref = psnr(sr, hr, 2)
    assert math.isfinite(ref)
    assert psnr(sr.numpy(), hr.numpy(), 2) == ref
    assert psnr(sr.float(), hr.double(), 2) == ref
    assert psnr(sr[0], hr[0], 2) == ref
    assert psnr(sr.long(), hr, 2) == ref

@pytest.mark.parametrize('sr, hr, kw, exc, msg', [
    ('rgb', 'rgb_small', {}, ValueError, 'mod-cropped'),
    ('rgb', 'gray', {}, ValueError, 'one channel'),
    ('unit', 'rgb', {}, ValueError, 'to_uint8(x)'),
    ('half_levels', 'rgb', {}, ValueError, '8-bit values'),
    ('negative', 'rgb', {}, ValueError, '8-bit values'),
    ('nan', 'rgb', {}, ValueError, '8-bit values'),
    ('hwc', 'rgb', {}, ValueError, 'permute(2, 0, 1)'),
    ('batch', 'rgb', {}, ValueError, 'once per image'),
    ('four', 'rgb', {}, ValueError, 'C = 1 or 3'),
    ('boolean', 'gray', {}, TypeError, 'bool'),
    ('list', 'rgb', {}, TypeError, 'torch tensor or numpy'),
    ('rgb', 'rgb', dict(convention='skimage'), ValueError, "'matlab', 'paper'"),
    ('rgb', 'rgb', dict(scale=0), ValueError, 'integer >= 1'),
    ('rgb', 'rgb', dict(scale=2.0), ValueError, 'integer >= 1'),
    ('rgb', 'rgb', dict(scale=True), ValueError, 'integer >= 1'),
    ('rgb', 'rgb', dict(scale=12), ValueError, 'too small'),
])
@pytest.mark.parametrize('fn', [psnr, ssim, psnr_ssim])
def test_bad_inputs(fn, sr, hr, kw, exc, msg):
    rgb = torch.randint(0, 256, (3, 24, 24), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    imgs = dict(rgb=rgb, rgb_small=rgb[:, :20, :20], gray=rgb[:1], unit=rgb.float() / 255,
                half_levels=rgb.float() + 0.5, negative=rgb.int() - 1, nan=rgb.float().index_fill(0, torch.tensor([0]), float('nan')),
                hwc=rgb.permute(1, 2, 0), batch=rgb[None], four=torch.cat([rgb, rgb[:1]]), boolean=rgb[:1] > 3,
                list=rgb.tolist())
    kw = dict(dict(scale=2), **kw)
    with pytest.raises(exc) as e: fn(imgs[sr], imgs[hr], **kw)
    assert msg in str(e.value)

def test_ssim_needs_the_window():
    x = torch.zeros(3, 18, 18, dtype=torch.uint8)
    assert psnr(x, x, 4) == math.inf                       # 10x10 left: PSNR is fine
    with pytest.raises(ValueError, match='11x11'): ssim(x, x, 4)
