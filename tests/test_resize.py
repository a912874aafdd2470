"""`ikm_nb.resize`: MATLAB's bicubic imresize, checked against MATLAB's own output and a slow loop reference."""
import math
import numpy as np
import pytest
import torch
from PIL import Image
from ikm_nb.resize import imresize, modcrop, resize_weights

ONE_THREAD = True   # many small tensor ops: conftest runs this module on one thread (restored after)

SCALES = (2, 3, 4)

def load(path):
    "uint8 (C, H, W) from a PNG, C = 1 for grayscale; PIL directly (independent of ikm_nb.data)."
    a = np.array(Image.open(path))
    return torch.from_numpy(a).permute(2, 0, 1).contiguous() if a.ndim == 3 else torch.from_numpy(a)[None]

def matlab_cases(root):
    "(HR path, scale, MATLAB LR path) for the 57 images of matlab_bicubic_LR."
    out = []
    for lr in sorted((root / 'matlab_bicubic_LR').glob('*/x*/*_LRBI_x*.png')):
        s = int(lr.parent.name[1:])
        out.append((root / lr.parent.parent.name / f"{lr.name.split('_LRBI_')[0]}.png", s, lr))
    return out

# ---------------------------------------------------------------- MATLAB's own output
def test_matlab_lr_pixel_exact(shared_data):
    cases = matlab_cases(shared_data)
    assert len(cases) == 57 and {s for _, s, _ in cases} == set(SCALES)
    bad = []
    for hr_path, s, lr_path in cases:
        hr = load(hr_path)
        if hr.shape[0] == 1: hr = hr.expand(3, -1, -1)     # bridge: made 3-channel before MATLAB resized it
        ref = load(lr_path)
        lr = imresize(modcrop(hr, s), 1 / s)
        if lr.shape != ref.shape or not torch.equal(lr, ref):
            n = int((lr != ref).sum()) if lr.shape == ref.shape else f'shape {tuple(lr.shape)} vs {tuple(ref.shape)}'
            bad.append(f'{lr_path.name}: {n}')
    assert not bad, f'{len(bad)} of 57 differ from MATLAB: {bad}'

def test_batched_equals_per_image_on_real_images(shared_data):
    hrs = [modcrop(load(p), 4)[:, :64, :80] for p in sorted((shared_data / 'Set5').glob('*.png'))]
    batch = torch.stack(hrs)
    lr = imresize(batch, 1 / 4)
    assert lr.shape == (5, 3, 16, 20)
    for i, h in enumerate(hrs): assert torch.equal(lr[i], imresize(h, 1 / 4))

@pytest.mark.skipif(not torch.cuda.is_available(), reason='no CUDA device')
def test_cuda_matches_cpu(shared_data):
    for hr_path, s, lr_path in matlab_cases(shared_data):
        hr = load(hr_path).expand(3, -1, -1) if load(hr_path).shape[0] == 1 else load(hr_path)
        lr = imresize(modcrop(hr, s).cuda(), 1 / s)
        assert lr.is_cuda and torch.equal(lr.cpu(), load(lr_path))
        f = imresize(modcrop(hr, s).cuda().float(), 1 / s)
        assert torch.allclose(f.cpu(), imresize(modcrop(hr, s).float(), 1 / s), atol=1e-3)
        up = imresize(lr, s)
        assert torch.equal(up.cpu(), imresize(lr.cpu(), s))

# ---------------------------------------------------------------- a slow, literal loop reference
def keys(t):
    "Keys' cubic, a = -0.5, for one number."
    t = abs(t)
    if t <= 1: return 1.5 * t**3 - 2.5 * t**2 + 1
    if t <= 2: return -0.5 * t**3 + 2.5 * t**2 - 4 * t + 2
    return 0.0

def mirror(j, n):
    "1-based index j mapped into 1..n by symmetric padding (the edge pixel repeated)."
    m = (j - 1) % (2 * n)
    return m + 1 if m < n else 2 * n - m

def ref_resize_axis(a, axis, out_len, scale, round_u8):
    "Resize numpy float64 `a` along `axis` one output pixel at a time, as MATLAB's imresize does."
    a = np.moveaxis(a, axis, -1)
    n = a.shape[-1]
    shrink = scale < 1
    width = 4 / scale if shrink else 4.0
    out = np.zeros(a.shape[:-1] + (out_len,))
    for i in range(1, out_len + 1):
        u = i / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - width / 2)
        taps = [left + k for k in range(math.ceil(width) + 2)]
        ws = [scale * keys(scale * (u - j)) if shrink else keys(u - j) for j in taps]
        tot = sum(ws)
        acc = np.zeros(a.shape[:-1])
        for j, wj in zip(taps, ws): acc = acc + (wj / tot) * a[..., mirror(j, n) - 1]
        out[..., i - 1] = acc
    if round_u8: out = np.floor(np.clip(out, 0, 255) + 0.5)
    return np.moveaxis(out, -1, axis)

def ref_imresize(img, scale=None, size=None):
    a = img.numpy().astype(np.float64)
    H, W = a.shape[-2:]
    if size is None: size, scales = (math.ceil(H * scale), math.ceil(W * scale)), (scale, scale)
    else: scales = (size[0] / H, size[1] / W)
    order = [1, 0] if scales[1] < scales[0] else [0, 1]
    for ax in order: a = ref_resize_axis(a, a.ndim - 2 + ax, size[ax], scales[ax], img.dtype == torch.uint8)
    return a

@pytest.mark.parametrize('scale', [1 / 2, 1 / 3, 1 / 4, 0.37, 0.8, 1.0, 1.5, 2, 2.2, 3, 4])
def test_against_loop_reference(scale):
    g = torch.Generator().manual_seed(int(scale * 1000))
    img = torch.randint(0, 256, (2, 11, 14), dtype=torch.uint8, generator=g)
    ours = imresize(img, scale)
    ref = ref_imresize(img, scale)
    assert ours.dtype == torch.uint8 and ours.shape == ref.shape
    assert np.array_equal(ours.numpy(), ref.astype(np.uint8))
    f = imresize(img.double(), scale)
    assert f.dtype == torch.float64
    np.testing.assert_allclose(f.numpy(), ref_imresize(img.double(), scale), rtol=0, atol=1e-9)

@pytest.mark.parametrize('size', [(5, 20), (20, 5), (11, 3), (30, 28)])
def test_explicit_size_and_dimension_order(size):
    img = torch.randint(0, 256, (3, 11, 14), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    ours = imresize(img, size=size)
    assert ours.shape == (3, *size)
    assert np.array_equal(ours.numpy(), ref_imresize(img, size=size).astype(np.uint8))

def test_smaller_scale_first():
    "MATLAB resizes the dimension with the smaller scale first: doing it the other way round differs."
    img = torch.randint(0, 256, (1, 40, 40), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    out = imresize(img, size=(30, 13))                                   # width shrinks more: width first
    width_first = imresize(imresize(img, size=(40, 13)), size=(30, 13))   # scale 1 along an axis is the identity
    height_first = imresize(imresize(img, size=(30, 40)), size=(30, 13))
    assert torch.equal(out, width_first) and not torch.equal(out, height_first)
    uniform = imresize(img, 1 / 4)                                       # ties: height first
    assert torch.equal(uniform, imresize(imresize(img, size=(10, 40)), size=(10, 10)))
    assert not torch.equal(uniform, imresize(imresize(img, size=(40, 10)), size=(10, 10)))

def test_ties_round_half_away_from_zero():
    "x2 enlarging has dyadic weights (sum of k/128): exact .5 results occur and must round up, not to even."
    img = torch.randint(0, 256, (1, 1, 400), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    exact = imresize(img.double(), 2)                      # one row: the height pass copies it exactly
    inside = (exact >= 0) & (exact <= 255)
    ties = inside & (exact - exact.floor() == 0.5)
    assert ties.sum() > 5
    u8 = imresize(img, 2).double()
    assert torch.equal(u8[ties], exact[ties].floor() + 1)
    assert not torch.equal(u8[ties], torch.round(exact[ties]))   # half-to-even would differ somewhere
    assert torch.equal(u8[inside], (exact[inside] + 0.5).floor())

# ---------------------------------------------------------------- properties
def test_weights_rows_sum_to_one_and_symmetric_padding():
    for n_in, n_out, s in [(16, 8, 0.5), (30, 10, 1 / 3), (7, 21, 3.0), (9, 4, 0.4)]:
        w, idx = resize_weights(n_in, n_out, s)
        np.testing.assert_allclose(w.sum(1).numpy(), 1, atol=1e-14)
        assert idx.min() >= 0 and idx.max() < n_in
    w, idx = resize_weights(16, 8, 0.5)
    assert idx[0].tolist() == [2, 1, 0, 0, 1, 2, 3, 4]       # symmetric: ..., 3, 2, 1 | 1, 2, 3, ...

def test_output_sizes_are_ceil():
    img = torch.zeros(3, 5, 7, dtype=torch.uint8)
    assert imresize(img, 1 / 2).shape == (3, 3, 4)
    assert imresize(img, 1 / 3).shape == (3, 2, 3)
    assert imresize(img, 3).shape == (3, 15, 21)
    assert imresize(img, 0.5 + 1e-9).shape == (3, 3, 4)

def test_modcrop_then_downscale_inverts_sizes():
    for s in SCALES:
        hr = modcrop(torch.zeros(3, 321, 481, dtype=torch.uint8), s)
        assert hr.shape[-2] % s == 0 and hr.shape[-1] % s == 0
        assert hr.shape[-2] > 321 - s and hr.shape[-1] > 481 - s
        lr = imresize(hr, 1 / s)
        assert imresize(lr, s).shape == hr.shape

def test_float_close_to_uint8():
    yy, xx = torch.meshgrid(torch.arange(64.), torch.arange(96.), indexing='ij')
    img = (128 + 70 * torch.sin(xx / 9) * torch.cos(yy / 6)).round().to(torch.uint8).expand(3, -1, -1)
    for s in (1 / 2, 1 / 3, 1 / 4, 2, 3):
        u8, f = imresize(img, s).float(), imresize(img.float(), s)
        assert f.dtype == torch.float32 and f.shape == u8.shape
        assert (f.clamp(0, 255) - u8).abs().max() <= 1.2     # two roundings of 0.5, the first through the second pass
        assert (f.clamp(0, 255) - u8).abs().mean() < 0.5

def test_float_keeps_overshoot_uint8_clips():
    edge = torch.zeros(1, 8, 8); edge[..., 4:] = 255
    f = imresize(edge, 2)
    assert f.min() < 0 and f.max() > 255
    u8 = imresize(edge.to(torch.uint8), 2)
    assert u8.min() == 0 and u8.max() == 255

def test_dtypes_and_layouts():
    img = torch.randint(0, 256, (2, 3, 12, 12), dtype=torch.uint8, generator=torch.Generator().manual_seed(4))
    assert imresize(img.half(), 1 / 2).dtype == torch.float16
    assert imresize(img.bfloat16(), 1 / 2).dtype == torch.bfloat16
    assert imresize(img[0, 0], 1 / 2).shape == (6, 6)
    assert torch.equal(imresize(img, 1 / 3)[1], imresize(img[1], 1 / 3))
    assert torch.equal(imresize(img, 1), img)
    assert torch.equal(imresize(img[..., ::2, :], 1 / 2), imresize(img[..., ::2, :].contiguous(), 1 / 2))

@pytest.mark.parametrize('call, exc, msg', [
    (lambda x: imresize(x.numpy(), 1 / 2), TypeError, 'permute(2, 0, 1)'),
    (lambda x: imresize(x.int(), 1 / 2), TypeError, 'uint8 and floating'),
    (lambda x: imresize(x[0, 0, 0], 1 / 2), ValueError, '(..., H, W)'),
    (lambda x: imresize(x), ValueError, 'exactly one'),
    (lambda x: imresize(x, 0.5, size=(3, 3)), ValueError, 'exactly one'),
    (lambda x: imresize(x, 0), ValueError, 'positive number'),
    (lambda x: imresize(x, float('nan')), ValueError, 'positive number'),
    (lambda x: imresize(x, True), ValueError, 'positive number'),
    (lambda x: imresize(x, size=(3,)), ValueError, 'pair of positive integers'),
    (lambda x: imresize(x, size=(3, 2.5)), ValueError, 'pair of positive integers'),
    (lambda x: modcrop(x, 0), ValueError, 'integer >= 1'),
    (lambda x: modcrop(x, 1.5), ValueError, 'integer >= 1'),
    (lambda x: modcrop(x.numpy(), 2), TypeError, '(..., H, W)'),
])
def test_bad_inputs(call, exc, msg):
    x = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
    with pytest.raises(exc) as e: call(x)
    assert msg in str(e.value)
