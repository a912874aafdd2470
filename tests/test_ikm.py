"""IKM layers against a slow per-image reference loop, in float64; the fast path against the reference implementation."""
import itertools, random
import pytest, torch
import torch.nn as nn
import torch.nn.functional as F
from ikm_nb.ikm import (IKMConv1d, IKMConv2d, cag, ikm_convert, set_ikm_mode, ikm_layers, ikm_impl, ikm_options, set_ikm_impl,
                        ConcatAttention, IKM_IMPLS, BATCH_CONVS)

torch.set_default_dtype(torch.float64)
DEFAULT_DTYPE = torch.float64   # conftest applies it to every test of this module

# ---- slow references -------------------------------------------------------------------------
def ref_cag(x, k, t=0.0):
    "Eq. 9-11 with explicit loops over the adaptive-pooling bins (start = floor(i*L/k), end = ceil((i+1)*L/k))."
    B, C, *sp = x.shape
    ks = (k,) * len(sp)
    out = torch.empty(B, C, *ks)
    for b in range(B):
        for c in range(C):
            xm = x[b, c]
            thr = {'mean': xm.mean(), 'median': xm.flatten().median()}.get(t, t) if isinstance(t, str) else t
            m = (xm >= thr).double()
            pooled = torch.empty(ks)
            for idx in itertools.product(*[range(kk) for kk in ks]):
                sl = tuple(slice((i * L) // kk, -((-(i + 1) * L) // kk)) for i, L, kk in zip(idx, sp, ks))
                pooled[idx] = m[sl].mean()
            n = pooled.numel()
            e = torch.exp(pooled.flatten()); s = (e / e.sum() * n).view(ks)
            out[b, c] = 1 + 1 / (1 + torch.exp(-(s - 1)))
    return out

def ref_forward(conv, x):
    "Each image convolved with its own kernel a_b * w, one at a time."
    f = F.conv1d if x.dim() == 3 else F.conv2d
    a = ref_cag(x, conv.kernel_size[0], conv.t)
    G = conv.groups; cin = x.shape[1]
    ys, whs = [], []
    for b in range(x.shape[0]):
        ab = a[b].reshape(G, 1, cin // G, *a.shape[2:])
        w = conv.weight.reshape(G, -1, cin // G, *conv.weight.shape[2:])
        wh = (ab * w).reshape(conv.weight.shape)
        whs.append(wh)
        ys.append(f(x[b:b+1], wh, conv.bias, conv.stride, conv.padding, conv.dilation, G))
    return torch.cat(ys), a, whs

def per_image_kernel_grads(conv, x, gy):
    "dL/dw_hat_b for each image, L = <gy, y>."
    f = F.conv1d if x.dim() == 3 else F.conv2d
    _, a, whs = ref_forward(conv, x)
    grads = []
    for b, wh in enumerate(whs):
        wh = wh.detach().requires_grad_()
        f(x[b:b+1], wh, None, conv.stride, conv.padding, conv.dilation, conv.groups).backward(gy[b:b+1])
        grads.append(wh.grad)
    return torch.stack(grads), a

def rel_err(a, b): return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item()

# ---- random cases ----------------------------------------------------------------------------
def cases(n=24, seed=0):
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        nd = 1 if i % 3 == 0 else 2
        k = rnd.choice([3, 5]); d = rnd.choice([1, 2, 3]); B = rnd.randint(1, 8)
        groups = rnd.choice([1, 1, 2]); cin = groups * rnd.randint(1, 3); cout = groups * rnd.randint(1, 3)
        size = [rnd.randint(k + (k - 1) * (d - 1), 14) for _ in range(nd)]
        pad = rnd.choice([0, d * (k // 2)]); stride = rnd.choice([1, 1, 2]); bias = rnd.random() < 0.5
        out.append(dict(nd=nd, k=k, d=d, B=B, groups=groups, cin=cin, cout=cout, size=size, pad=pad, stride=stride, bias=bias))
    return out

def make(c, mode, t=0.0):
    cls = IKMConv1d if c['nd'] == 1 else IKMConv2d
    conv = cls(c['cin'], c['cout'], c['k'], stride=c['stride'], padding=c['pad'], dilation=c['d'], groups=c['groups'],
               bias=c['bias'], mode=mode, t=t)
    x = torch.randn(c['B'], c['cin'], *c['size'])
    return conv, x

# every implementation: the reference (authors' grouped conv) and the fast path with each way of applying B kernels
IMPLS = [('reference', 'auto'), ('fast', 'grouped'), ('fast', 'loop')]
impl_ids = lambda v: f"{v[0]}-{v[1]}"

@pytest.fixture(params=IMPLS, ids=impl_ids)
def impl(request):
    with ikm_impl(*request.param): yield request.param

@pytest.mark.parametrize('c', cases(), ids=lambda c: f"{c['nd']}d-B{c['B']}-k{c['k']}-d{c['d']}-g{c['groups']}")
def test_forward_matches_per_image_reference(c, impl):
    for mode in ('iso', 'exact'):
        torch.manual_seed(1)
        conv, x = make(c, mode)
        y_ref, _, _ = ref_forward(conv, x)
        assert rel_err(conv(x), y_ref) < 1e-10

@pytest.mark.parametrize('c', cases(12, seed=1), ids=lambda c: f"{c['nd']}d-B{c['B']}-k{c['k']}-d{c['d']}")
def test_each_modes_gradients(c, impl):
    torch.manual_seed(2)
    conv, x = make(c, 'iso')
    x.requires_grad_()
    gy = torch.randn_like(conv(x))
    G, a = per_image_kernel_grads(conv, x.detach(), gy)            # (B, c_out, c_in/g, *k)
    # the input gradient is exact in every IKM mode: autograd through the per-image reference
    xr = x.detach().clone().requires_grad_()
    ref_forward(conv, xr)[0].backward(gy)
    amod = a.reshape(a.shape[0], c['groups'], 1, c['cin'] // c['groups'], *a.shape[2:])
    amod = amod.expand(-1, -1, c['cout'] // c['groups'], -1, *[-1] * (a.dim() - 2)).reshape(G.shape)
    want = {'iso': G.mean(0), 'iso-sum': G.sum(0), 'exact': (amod * G).sum(0)}
    for mode, red in [('iso', 'mean'), ('iso-sum', 'sum'), ('exact', 'mean')]:
        conv.mode = mode.split('-')[0]; conv.iso_reduction = red
        conv.zero_grad(); x.grad = None
        conv(x).backward(gy)
        assert rel_err(conv.weight.grad, want[mode]) < 1e-10, mode
        assert rel_err(x.grad, xr.grad) < 1e-10, mode
        if conv.bias is not None:
            assert rel_err(conv.bias.grad, gy.sum(dim=[0, *range(2, gy.dim())])) < 1e-12
    # 'go': one kernel w * mean_b(a_b), an ordinary convolution, plain autograd
    conv.mode = 'go'; conv.zero_grad()
    f = F.conv1d if c['nd'] == 1 else F.conv2d
    w = conv.weight.detach().clone().requires_grad_()
    abar = a.mean(0).reshape(c['groups'], 1, c['cin'] // c['groups'], *a.shape[2:])
    wh = (abar * w.reshape(c['groups'], -1, c['cin'] // c['groups'], *w.shape[2:])).reshape(w.shape)
    y_ref = f(x.detach(), wh, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups)
    y_ref.backward(gy)
    y = conv(x.detach()); y.backward(gy)
    assert rel_err(y, y_ref) < 1e-10 and rel_err(conv.weight.grad, w.grad) < 1e-10

@pytest.mark.parametrize('nd', [1, 2])
def test_batch_independence(nd, impl):
    cls = IKMConv1d if nd == 1 else IKMConv2d
    conv = cls(4, 3, 3, padding=1)
    x = torch.randn(6, 4, *[11] * nd); x2 = x.clone(); x2[1:] = torch.randn_like(x2[1:])
    for mode in ('iso', 'exact'):
        conv.mode = mode
        assert rel_err(conv(x2)[0], conv(x)[0]) < 1e-12, mode
        assert rel_err(conv(x)[:1], conv(x[:1])) < 1e-12, mode   # batch of one = same image in a batch
    conv.mode = 'go'
    assert (conv(x2)[0] - conv(x)[0]).abs().max() > 1e-6

@pytest.mark.parametrize('t', [0.0, 0.3, 'mean', 'median'])
@pytest.mark.parametrize('shape,k', [((3, 5, 17), 3), ((2, 4, 13, 9), 3), ((2, 3, 10, 16), 5), ((1, 2, 4, 7), 3)])
@pytest.mark.parametrize('which', IKM_IMPLS)
def test_cag_matches_reference_and_range(shape, k, t, which):
    x = torch.randn(*shape)
    a = cag(x, k, t, impl=which)
    assert rel_err(a, ref_cag(x, k, t)) < 1e-12
    assert ((a > 1) & (a < 2)).all()

def test_attention_shared_by_output_channels():
    conv = IKMConv2d(5, 7, 3, padding=1)
    x = torch.randn(3, 5, 9, 9)
    wh = conv.modulated_weight(x)                       # (B, c_out, c_in, 3, 3)
    ratio = wh / conv.weight
    assert torch.allclose(ratio, ratio[:, :1].expand_as(ratio))
    assert ((ratio > 1) & (ratio < 2)).all()

def test_no_gradient_reaches_attention():
    conv = IKMConv2d(2, 2, 3, padding=1, mode='exact')
    x = torch.randn(2, 2, 8, 8, requires_grad=True)
    a = conv.attention(x)
    assert not a.requires_grad

def test_drop_in_state_dict_and_padding_modes():
    for pm in ('zeros', 'reflect', 'replicate', 'circular'):
        ref = nn.Conv2d(3, 4, 3, padding=1, padding_mode=pm)
        ikm = IKMConv2d(3, 4, 3, padding=1, padding_mode=pm)
        ikm.load_state_dict(ref.state_dict())
        x = torch.randn(2, 3, 9, 9)
        ikm.mode = 'off'; assert rel_err(ikm(x), ref(x)) < 1e-12
        ikm.mode = 'iso'
        xp = F.pad(x, ref._reversed_padding_repeated_twice, mode=pm) if pm != 'zeros' else F.pad(x, (1, 1, 1, 1))
        wh = ikm.modulated_weight(x)
        want = torch.cat([F.conv2d(xp[b:b+1], wh[b], ikm.bias) for b in range(2)])
        assert rel_err(ikm(x), want) < 1e-10, pm
    same = IKMConv2d(3, 4, 3, padding='same', dilation=2)
    assert same(torch.randn(2, 3, 10, 10)).shape == (2, 4, 10, 10)

def test_ikm_convert_keeps_parameters_and_optimizer():
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 6, 5, padding=2), nn.Conv1d(2, 2, 3))
    params = list(net.parameters())
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    ikm_convert(net)
    assert [type(m).__name__ for m in net] == ['IKMConv2d', 'ReLU', 'Conv2d', 'IKMConv1d']
    assert all(p is q for p, q in zip(params, net.parameters()))
    ikm_convert(net, kernel_sizes=(5,), include=lambda n, m: n == '2')
    assert type(net[2]).__name__ == 'IKMConv2d' and len(ikm_layers(net)) == 3
    set_ikm_mode(net, 'go', t='mean')
    assert all(m.mode == 'go' and m.t == 'mean' for m in ikm_layers(net))
    with pytest.raises(ValueError, match='unknown IKM mode'): set_ikm_mode(net, 'fast')

def test_optimizer_step_iso_equals_manual_authors_rule(impl):
    "IsO inside the layer == the authors' loop (grouped conv, then replace .grad by the batch mean)."
    torch.manual_seed(3)
    conv = IKMConv2d(4, 3, 3, padding=1, bias=False)
    x = torch.randn(5, 4, 8, 8); target = torch.randn(5, 3, 8, 8)
    # authors: grouped conv on the stacked kernels, per-image gradients, mean over the batch
    w_hat = conv.modulated_weight(x).detach().requires_grad_()           # (B, c_out, c_in, 3, 3)
    y = F.conv2d(x.reshape(1, -1, 8, 8), w_hat.flatten(0, 1), None, 1, 1, 1, 5).view(5, 3, 8, 8)
    F.l1_loss(y, target).backward()
    authors = w_hat.grad.mean(0)
    F.l1_loss(conv(x), target).backward()
    assert rel_err(conv.weight.grad, authors) < 1e-10

@pytest.mark.parametrize('dtype', [torch.bfloat16])
def test_autocast_backward_runs(dtype, impl):
    conv = IKMConv2d(4, 3, 3, padding=1).float()
    x = torch.randn(3, 4, 8, 8, dtype=torch.float32, requires_grad=True)
    with torch.autocast('cpu', dtype=dtype):
        y = conv(x)
    y.float().sum().backward()
    assert conv.weight.grad.dtype == torch.float32 and x.grad.dtype == torch.float32

def test_inplace_activation_after_ikm(impl):
    conv = IKMConv2d(3, 4, 3, padding=1, bias=False)
    x = torch.randn(3, 3, 8, 8, requires_grad=True)
    for mode in ('iso', 'exact', 'go'):
        conv.mode = mode
        y = F.relu(conv(x), inplace=True)
        y.sum().backward()


# ---- the fast path against the reference implementation ------------------------------------
def adaptive_pool_cag(x, k, t=0.0):
    "CAG written with F.adaptive_avg_pool1d/2d, as the authors do (independent of ikm_nb)."
    thr = t
    if isinstance(t, str):
        flat = x.flatten(2)
        thr = (flat.mean(-1) if t == 'mean' else flat.median(-1).values).reshape(*x.shape[:2], *[1] * (x.dim() - 2))
    m = (x >= thr).to(x.dtype)
    pooled = (F.adaptive_avg_pool1d if x.dim() == 3 else F.adaptive_avg_pool2d)(m, (k,) * (x.dim() - 2))
    s = torch.softmax(pooled.flatten(2), -1) * k ** (x.dim() - 2)
    return (1 + torch.sigmoid(s - 1)).view_as(pooled)

@pytest.mark.parametrize('shape', [(2, 3, 48, 48), (1, 4, 180, 240), (2, 3, 13, 7), (2, 2, 5, 16), (3, 2, 3, 3), (2, 3, 17),
                                   (2, 3, 30), (1, 2, 7, 50)])
@pytest.mark.parametrize('k', [3, 5])
@pytest.mark.parametrize('t', [0.0, -0.2, 'mean', 'median'])
def test_fast_cag_equals_adaptive_avg_pool(shape, k, t):
    torch.manual_seed(0)
    x = torch.randn(*shape)
    x[0, 0].clamp_(min=0)                              # a map with ties at the threshold
    want = adaptive_pool_cag(x, k, t)
    assert rel_err(cag(x, k, t, impl='fast'), want) < 1e-13
    assert rel_err(cag(x, k, t, impl='reference'), want) < 1e-13
    if x.dim() == 4:                                  # any memory format
        assert rel_err(cag(x.contiguous(memory_format=torch.channels_last), k, t, impl='fast'), want) < 1e-13
    assert rel_err(cag(x.float(), k, t, impl='fast').double(), want) < 1e-6
    assert cag(x.float(), k, t, impl='fast').dtype == torch.float32

def test_fast_cag_half_precision_counts():
    "bf16 features: the fast path counts in float32 (exact); the reference pools bf16 0/1 maps. Both agree to bf16 precision."
    x = torch.randn(2, 3, 60, 90)
    a32 = cag(x.bfloat16(), 3, impl='fast')   # the attention of bf16 features is float32 (ikm_options.attention_dtype)
    assert a32.dtype == torch.float32
    assert (a32.double() - adaptive_pool_cag(x.bfloat16().float(), 3)).abs().max() < 1e-6
    ikm_options.attention_dtype = 'input'     # rounded to the features' dtype: bf16, to bf16 precision
    try: a16 = cag(x.bfloat16(), 3, impl='fast')
    finally: ikm_options.attention_dtype = 'float32'
    assert a16.dtype == torch.bfloat16
    assert (a16.double() - adaptive_pool_cag(x, 3)).abs().max() < 1e-2

def test_cag_of_concatenation_is_concatenation_of_cags():
    torch.manual_seed(0)
    parts = [torch.randn(2, c, 11, 9) for c in (5, 3, 3)]
    for t in (0.0, 'median'):
        conv = IKMConv2d(11, 4, 3, padding=1, t=t)
        ca = ConcatAttention(parts[0])
        a1 = ca(IKMConv2d(5, 4, 3, padding=1, t=t))
        assert rel_err(a1, cag(parts[0], 3, t)) < 1e-15
        ca.append(parts[1]); ca.append(parts[2])
        assert rel_err(ca(conv), cag(torch.cat(parts, 1), 3, t)) < 1e-15
        assert rel_err(ca(conv), ref_cag(torch.cat(parts, 1), 3, t)) < 1e-12
        conv.mode = 'off'; assert ca(conv) is None
        conv.mode = 'iso'; conv.impl = 'reference'; assert ca(conv) is None
        assert ca(nn.Conv2d(11, 4, 3)) is None

@pytest.mark.parametrize('mode', ['iso', 'exact', 'go'])
@pytest.mark.parametrize('batch_conv', ['grouped', 'loop'])
def test_given_attention_equals_own(mode, batch_conv):
    torch.manual_seed(0)
    conv = IKMConv2d(4, 3, 3, padding=1, mode=mode)
    x = torch.randn(3, 4, 9, 8, requires_grad=True); gy = torch.randn(3, 3, 9, 8)
    with ikm_impl('fast', batch_conv):
        y1 = conv(x); y1.backward(gy); g1 = (x.grad.clone(), conv.weight.grad.clone())
        x.grad = None; conv.zero_grad()
        y2 = conv(x, attention=conv.attention(x)); y2.backward(gy)
    assert rel_err(y2, y1) < 1e-15 and rel_err(x.grad, g1[0]) < 1e-15 and rel_err(conv.weight.grad, g1[1]) < 1e-15
    with pytest.raises(ValueError, match='attention of shape'):
        conv(x, attention=torch.ones(3, 5, 3, 3))

@pytest.mark.parametrize('c', cases(16, seed=5), ids=lambda c: f"{c['nd']}d-B{c['B']}-k{c['k']}-d{c['d']}-g{c['groups']}")
@pytest.mark.parametrize('batch_conv', ['grouped', 'loop'])
def test_fast_equals_reference_every_mode(c, batch_conv):
    "Outputs, input gradients and each mode's weight (and bias) gradient: fast path == reference implementation."
    torch.manual_seed(4)
    conv, x = make(c, 'iso')
    x.requires_grad_()
    y0 = conv(x)
    gy = torch.randn_like(y0)
    for mode, red in [('iso', 'mean'), ('iso', 'sum'), ('exact', 'mean'), ('go', 'mean'), ('off', 'mean')]:
        conv.mode, conv.iso_reduction, conv.iso_replicas = mode, red, 3 if mode == 'iso' else 1
        out = {}
        for impl, bc in [('reference', 'auto'), ('fast', batch_conv)]:
            conv.impl = impl; conv.zero_grad(); x.grad = None
            with ikm_impl(batch_conv=bc):
                y = conv(x); y.backward(gy)
            out[impl] = [y, x.grad, conv.weight.grad] + ([conv.bias.grad] if conv.bias is not None else [])
        for got, want in zip(out['fast'], out['reference']):
            assert rel_err(got, want) < 1e-12, (mode, red)

def test_iso_replicas_divides_the_mean(impl):
    torch.manual_seed(0)
    conv = IKMConv2d(3, 2, 3, padding=1, bias=False)
    x = torch.randn(4, 3, 6, 6); gy = torch.randn(4, 2, 6, 6)
    conv(x).backward(gy); g1 = conv.weight.grad.clone(); conv.zero_grad()
    conv.iso_replicas = 2
    conv(x).backward(gy)
    assert rel_err(conv.weight.grad, g1 / 2) < 1e-14

def test_impl_switches():
    conv = IKMConv2d(3, 2, 3, padding=1)
    assert conv.impl is None and conv.active_impl == ikm_options.impl == 'fast' and conv.takes_attention
    with ikm_impl('reference'):
        assert conv.active_impl == 'reference' and not conv.takes_attention
        with ikm_impl(batch_conv='loop'): assert ikm_options.batch_conv == 'loop' and ikm_options.impl == 'reference'
        assert ikm_options.batch_conv == 'auto'
    assert conv.active_impl == 'fast'
    conv.impl = 'reference'; assert conv.active_impl == 'reference' and 'impl=' in repr(conv)
    with ikm_impl('fast'): assert conv.active_impl == 'reference'        # a layer's own impl wins
    conv.mode = 'off'; assert not conv.takes_attention
    with pytest.raises(ValueError, match='unknown IKM implementation'): conv.impl = 'triton'
    with pytest.raises(ValueError, match='unknown IKM implementation'):
        with ikm_impl('slow'): pass
    with pytest.raises(ValueError, match='unknown batch_conv'):
        with ikm_impl(batch_conv='vmap'): pass
    assert ikm_options.impl == 'fast' and ikm_options.batch_conv == 'auto'
    assert IKMConv2d(3, 2, 3, impl='reference').impl == 'reference'
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3))
    ikm_convert(net, impl='reference')
    assert all(l.impl == 'reference' for l in ikm_layers(net))
    set_ikm_impl(net, None); assert all(l.impl is None for l in ikm_layers(net))
    assert list(IKMConv2d(3, 4, 3, impl='reference').state_dict()) == list(nn.Conv2d(3, 4, 3).state_dict())

def test_batch_of_one_is_a_plain_convolution_with_modulated_weight():
    conv = IKMConv2d(4, 3, 3, padding=1)
    x = torch.randn(1, 4, 10, 10)
    for bc in BATCH_CONVS:
        with ikm_impl('fast', bc):
            assert rel_err(conv(x), F.conv2d(x, conv.modulated_weight(x)[0], conv.bias, 1, 1)) < 1e-14

def test_auto_batch_conv_policy():
    from ikm_nb.fast import _batch_conv_choice
    x = torch.randn(4, 3, 8, 8)
    n = torch.get_num_threads()
    try:
        torch.set_num_threads(1); assert _batch_conv_choice(x) == 'loop'
        torch.set_num_threads(2)
        assert _batch_conv_choice(x) == 'grouped'
        assert _batch_conv_choice(x.contiguous(memory_format=torch.channels_last)) == 'loop'
        with ikm_impl(batch_conv='grouped'): torch.set_num_threads(1); assert _batch_conv_choice(x) == 'grouped'
    finally:
        torch.set_num_threads(n)
