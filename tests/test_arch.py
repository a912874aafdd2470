"""ikm_nb.arch / ikm_nb.complexity: the paper's (and the authors' code's) #Params and Multi-Adds, shapes, Eq. 19, configs.

The expected numbers below come from the paper (Tables I-V, Sec. IV-D4) and from NOTES.md (the authors' code counted to
the unit), not from this code.
"""
import json

import pytest
import torch
import torch.nn as nn

from ikm_nb.arch import (UHDN, UHDNConfig, UHDB, DenseUnit, RDB, PRESETS, preset, uhdn, uhdn_l, clamp_depths,
                         fig8_presets)
from ikm_nb.complexity import count_params, count_macs, complexity_table, count_ops
from ikm_nb.arch import conv_factory, set_dense_split, set_dense_buffer
from ikm_nb.ikm import IKMConv2d, ikm_layers, ikm_impl, set_ikm_impl, set_ikm_mode


ONE_THREAD = True   # many small tensor ops: conftest runs this module on one thread (restored after)


def meta(cfg_or_name, **kw):
    "The model of a config / preset, built on the meta device (shapes only: instant, no memory)."
    cfg = preset(cfg_or_name, **kw) if isinstance(cfg_or_name, str) else cfg_or_name.replace(**kw)
    with torch.device('meta'): return cfg.build()


# ---------------------------------------------------------------- #Params (paper / authors' code)
@pytest.mark.parametrize('scale,params', [(2, 1_390_915), (3, 1_402_435), (4, 1_400_131)])
def test_params_uhdn(scale, params):
    assert count_params(meta('uhdn', scale=scale)) == params
    assert count_params(meta('uhdn', scale=scale, ikm=False)) == params   # IKM adds no parameter


def test_params_variants():
    assert count_params(meta('uhdn_l')) == 10_903_427                     # Table II: 10.9M
    assert [count_params(meta(f'uhdn_v{i}')) for i in (1, 2, 3)] == [1_390_915, 1_401_283, 1_401_283]
    assert count_params(meta('table5_dense')) == 1_380_547                # not the paper's 1380.3K (see 02_arch)


def test_table3_deltas():
    p = {k: count_params(meta(k)) for k in PRESETS if k.startswith('table3_')}
    d = lambda b, a: p[f'table3_{b}_{a}'] - p[f'table3_{b}_none']
    assert (d('rb', 'ca'), d('rb', 'sa'), d('rb', 'ikm')) == (19_392, 9_616, 0)
    for b in ('db', 'rdb', 'uhdb'):
        assert (d(b, 'ca'), d(b, 'sa'), d(b, 'ikm')) == (2_610, 1_290, 0)


def test_ikm_only_on_growth_convs():
    m = UHDN()
    convs = ikm_layers(m)
    assert len(convs) == 4 * 30 and all(c.kernel_size == (3, 3) and c.bias is None for c in convs)
    assert [c.in_channels for c in convs[:6]] == [64 + 12 * i for i in range(6)]
    plain = [n for n, c in m.named_modules() if type(c) is nn.Conv2d]
    assert {'conv_first', 'conv_after_body', 'upsample.0', 'conv_last'} <= set(plain)
    assert all(type(c) is nn.Conv2d for c in (m.conv_first, m.upsample[0], m.body[0].units[0].transition))
    assert m.upsample[0].groups == 16 and m.upsample[0].bias is None and m.conv_after_body.bias is None
    assert m.conv_first.bias is not None and m.conv_last.bias is not None
    assert ikm_layers(UHDN(ikm=False)) == []


# ---------------------------------------------------------------- Multi-Adds (480 x 360 x 3 output)
@pytest.mark.parametrize('name,scale,gflops', [('uhdn', 2, 60.3), ('uhdn', 3, 27.2), ('uhdn', 4, 15.7),
                                               ('uhdn_l', 2, 471.5), ('uhdn_v2', 2, 60.8)])
def test_macs(name, scale, gflops):
    m = meta(name, scale=scale)
    assert abs(count_macs(m) / 1e9 - gflops) <= 0.05
    assert count_macs(m) == count_macs(meta(name, scale=scale, ikm=False))   # IKM adds none


def test_macs_by_hand():
    # x2: LR 240x180 = 43,200 px; conv_first 1,728, body 1,341,312, conv_after_body 36,864, upsampler 9,216 weights/px;
    # conv_last 1,728 weights/px at 480x360 = 172,800 px; biases 64 @ LR and 3 @ HR
    weights = (1_728 + 1_341_312 + 36_864 + 9_216) * 43_200 + 1_728 * 172_800
    m = meta('uhdn')
    assert count_macs(m, count_bias=False) == weights
    assert count_macs(m) == weights + 64 * 43_200 + 3 * 172_800


def test_attention_macs():
    # SA on the full map: +0.42G (RB), +0.06G (dense); CA on a 1x1 map: ~0 (Table III)
    d = lambda b, a: (count_macs(meta(f'table3_{b}_{a}')) - count_macs(meta(f'table3_{b}_none'))) / 1e9
    assert abs(d('rb', 'sa') - 0.42) < 0.005 and abs(d('db', 'sa') - 0.06) < 0.005 and abs(d('uhdb', 'sa') - 0.06) < 0.005
    assert 0 < d('rb', 'ca') < 1e-4 and d('uhdb', 'ikm') == 0


def test_macs_meta_equals_real_run():
    m = UHDN(n_blocks=1, scale=3)
    assert count_macs(m, (48, 36), device=None) == count_macs(m, (48, 36))
    assert {l.mode for l in ikm_layers(m)} == {'iso'} and m.training        # left as it was
    with pytest.raises(ValueError, match='not divisible by the scale 3'): count_macs(m, (50, 36))


def test_complexity_table():
    df = complexity_table().set_index('row')
    for r in ('U-HDN+IKM x2', 'U-HDN+IKM x3', 'U-HDN+IKM x4', 'U-HDN_L+IKM x2', 'RB +SA', 'UHDB +CA'):
        assert df.params_ok[r] == True and df.gflops_ok[r] == True, r
    assert df.params_ok['no U-style, no hourglass'] == False                  # the known gap, reported


# ---------------------------------------------------------------- shapes
@pytest.mark.parametrize('scale', [2, 3, 4])
def test_output_shape_odd_sizes(scale):
    m = UHDN(scale=scale, n_blocks=1).eval()
    with torch.no_grad(): y = m(torch.rand(2, 3, 13, 7))
    assert y.shape == (2, 3, 13 * scale, 7 * scale) and torch.isfinite(y).all()


def test_full_model_forward_backward():
    m = uhdn()                                                                # the full U-HDN+IKM, IsO, training mode
    x = torch.rand(2, 3, 24, 24)
    y = m(x)
    assert y.shape == (2, 3, 48, 48)
    y.abs().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())


@pytest.mark.parametrize('name', ['table3_rb_ca', 'table3_rdb_sa', 'table3_db_ikm', 'table4_k5d2', 'uhdn_v3'])
def test_presets_run(name):
    m = preset(name, n_blocks=1).build().eval()
    with torch.no_grad(): assert m(torch.rand(1, 3, 9, 11)).shape == (1, 3, 18, 22)


# ---------------------------------------------------------------- Eq. 19 and the blocks
def test_uhdb_eq19():
    torch.manual_seed(0)
    b = UHDB(16, (6, 5, 4, 4, 5, 6), 8).eval()
    x = torch.randn(2, 16, 9, 7)
    F1, F2, F3, F4, F5, F6 = b.units
    with torch.no_grad():
        x1 = F1(x); x2 = F2(x1); x3 = F3(x2); x4 = F4(x3) + x2; x5 = F5(x4) + x1
        torch.testing.assert_close(b(x), F6(x5) + x)
        # Eq. 19 as written: y = x + F6(F1(x) + F5(F2(F1(x)) + F4(F3(F2(F1(x))))))
        torch.testing.assert_close(b(x), x + F6(F1(x) + F5(F2(F1(x)) + F4(F3(F2(F1(x)))))))


def test_uhdb_general_and_chained():
    torch.manual_seed(0)
    x = torch.randn(1, 8, 5, 5)
    b4 = UHDB(8, (6, 4, 4, 6), 4).eval()
    F1, F2, F3, F4 = b4.units
    with torch.no_grad():
        torch.testing.assert_close(b4(x), x + F4(F1(x) + F3(F2(F1(x)))))
        chain = UHDB(8, (4, 4, 4), 4, u_residual=False).eval()
        G1, G2, G3 = chain.units
        torch.testing.assert_close(chain(x), G3(G2(G1(x))))
    with pytest.raises(ValueError, match='even number'): UHDB(8, (4, 4, 4), 4)


def test_dense_unit_and_rdb():
    u = DenseUnit(64, 5, 12)
    assert [l.conv.weight.shape[1] for l in u.layers] == [64, 76, 88, 100, 112]
    assert u.transition.weight.shape == (64, 124, 1, 1) and u.transition.bias is None
    assert count_params(u) == 9 * 12 * (5 * 64 + 12 * 10) + 124 * 64
    torch.manual_seed(0)
    r = RDB(8, (4, 4), 4).eval()
    x = torch.randn(1, 8, 6, 6)
    with torch.no_grad():
        h1 = r.units[0](x) + x; h2 = r.units[1](h1) + h1
        torch.testing.assert_close(r(x), r.fusion(torch.cat([h1, h2], 1)))


# ---------------------------------------------------------------- config
def test_depth_clamp():
    assert clamp_depths((2, 3, 4, 5, 6, 7)) == (4, 4, 4, 5, 6, 7)
    assert clamp_depths((17, 1)) == (16, 4)
    assert preset('uhdn_v2').depths == (2, 3, 4, 5, 6, 7)                   # kept as the paper writes them
    assert [len(u.layers) for u in UHDN(preset('uhdn_v2')).body[0].units] == [4, 4, 4, 5, 6, 7]
    assert [len(u.layers) for u in UHDN(preset('uhdn_v2', depth_clamp=None)).body[0].units] == [2, 3, 4, 5, 6, 7]


def test_config_roundtrip():
    for cfg in (preset('uhdn_l', scale=3), preset('table3_rb_sa'), preset('table3_rdb_ikm', mode='go', t='mean'),
                UHDNConfig(scale=4, depths=(2, 3, 4, 5, 6, 7), kernel_size=5, dilation=2, upsampler_groups=8)):
        d = json.loads(cfg.to_json())
        assert UHDNConfig.from_dict(d) == cfg and UHDNConfig.from_json(cfg.to_json()) == cfg
        a, b = meta(cfg), UHDN.from_config(d)
        assert {k: v.shape for k, v in a.state_dict().items()} == {k: v.shape for k, v in b.state_dict().items()}
        assert b.cfg == cfg
    assert UHDNConfig.from_dict({'scale': 3}) == UHDNConfig(scale=3)         # missing fields: defaults
    assert UHDN(scale=3, ikm=False).cfg == UHDNConfig(scale=3, ikm=False)


def test_vanilla_checkpoint_loads_into_ikm_model():
    torch.manual_seed(0)
    plain, ikm = UHDN(ikm=False, n_blocks=2).eval(), UHDN(n_blocks=2).eval()
    sd = plain.state_dict()
    assert list(sd) == list(ikm.state_dict())
    ikm.load_state_dict(sd, strict=True)
    x = torch.rand(1, 3, 10, 12)
    with torch.no_grad():
        torch.testing.assert_close(ikm.set_ikm_mode('off')(x), plain(x))
        assert ikm.cfg.mode == 'off'
        assert not torch.allclose(ikm.set_ikm_mode('iso')(x), plain(x))
    assert all(isinstance(l, IKMConv2d) and l.mode == 'iso' for l in ikm_layers(ikm))


@pytest.mark.parametrize('kw,msg', [
    (dict(scale=8), 'unsupported scale 8'),
    (dict(scale=1), 'unsupported scale 1'),
    (dict(depths=(6, 5, 4, 4, 5)), 'depths has 5 entries but n_units = 6'),
    (dict(channels=66), 'not divisible by 4'),
    (dict(upsampler_groups=7), 'divisor of channels'),
    (dict(n_units=3, depths=(4, 4, 4)), 'even n_units'),
    (dict(mode='fast'), "unknown IKM mode 'fast'"),
    (dict(t='max'), "t must be a number, 'mean' or 'median'"),
    (dict(block='swin'), "unknown block 'swin'"),
    (dict(attention='cbam'), "unknown attention 'cbam'"),
    (dict(attention='ca', growth=10), 'divisible by attention_reduction'),
    (dict(kernel_size=4), 'kernel_size must be odd'),
    (dict(n_blocks=0), 'n_blocks must be a positive integer'),
    (dict(depths=(6, 5, 0, 4, 5, 6)), 'depths must be positive integers'),
    (dict(depth_clamp=(8, 4)), 'depth_clamp must be'),
    (dict(block='rb', n_units=8, depths=(3,) * 8), 'needs depths of 2'),
    (dict(arch='rcan'), "architecture 'rcan'"),
    (dict(ikm='false'), 'ikm must be True or False'),
])
def test_invalid_configs(kw, msg):
    with pytest.raises(ValueError, match=msg): UHDNConfig(**kw)


def test_invalid_dicts_and_presets():
    with pytest.raises(ValueError, match=r"unknown UHDNConfig fields \['num_feat'\]"): UHDNConfig.from_dict({'num_feat': 64})
    with pytest.raises(ValueError, match="architecture 'edsr'"): UHDNConfig.from_dict({'arch': 'edsr', 'scale': 2})
    with pytest.raises(ValueError, match="unknown preset 'uhdn_xl'"): preset('uhdn_xl')
    with pytest.raises(ValueError, match='unsupported scale 5'): uhdn_l(scale=5)


def test_fig8_grid_labels():
    g = fig8_presets()
    assert 'fig8_N4M6C64' in g and g['fig8_N4M6C64'] == preset('uhdn')
    assert g['fig8_N4M4C64'].depths == (6, 4, 4, 6)                          # Sec. IV-D1: M = 4 -> [6, 4, 4, 6]
    assert all(k in PRESETS for k in g)


# ---------------------------------------------------------------- the fast path (shared attention, dense buffer) == reference
def _grads(m):
    return [p.grad.clone() for p in m.parameters()]


def _rel(a, b): return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item()


@pytest.mark.parametrize('batch_conv', ['grouped', 'loop'])
def test_dense_unit_fast_equals_reference(batch_conv):
    "float64: a dense unit of IKM layers, every mode: outputs, input and parameter gradients; no-grad outputs (dense buffer)."
    torch.manual_seed(0)
    u = DenseUnit(8, 4, 4, conv=conv_factory(True), kernel_size=3).double()
    x = torch.randn(3, 8, 10, 7, dtype=torch.float64, requires_grad=True)
    gy = torch.randn(3, 8, 10, 7, dtype=torch.float64)
    for mode, red in [('iso', 'mean'), ('iso', 'sum'), ('exact', 'mean'), ('go', 'mean'), ('off', 'mean')]:
        set_ikm_mode(u, mode, iso_reduction=red)
        res = {}
        for impl, bc in [('reference', 'auto'), ('fast', batch_conv)]:
            set_ikm_impl(u, impl); u.zero_grad(); x.grad = None
            with ikm_impl(batch_conv=bc):
                y = u(x); y.backward(gy)
                with torch.no_grad(): y1, y3 = u(x[:1]), u(x)
            res[impl] = [y, x.grad, *_grads(u), y1, y3]
        for got, want in zip(res['fast'], res['reference']):
            assert _rel(got, want) < 1e-12, mode


def test_dense_unit_computes_each_channels_attention_once(monkeypatch):
    seen = []
    orig = IKMConv2d.attention
    def spy(self, x): seen.append(x.shape[1]); return orig(self, x)
    monkeypatch.setattr(IKMConv2d, 'attention', spy)
    u = DenseUnit(64, 6, 12, conv=conv_factory(True))
    x = torch.randn(1, 64, 6, 6)
    u(x)
    assert seen == [64]                          # t = 0: only the input; the growth channels (after ReLU) all pass: constant
    seen.clear(); set_ikm_mode(u, 'iso', t='mean'); u(x)
    assert seen == [64] + [12] * 5                                        # the input once, then each new part once
    seen.clear(); set_ikm_impl(u, 'reference'); u(x)
    assert seen == [64 + 12 * i for i in range(6)]                        # the authors: every conv its whole input


def _split_calls(monkeypatch):
    calls = []
    orig = DenseUnit._forward_split
    def spy(self, ikm, x): calls.append(x.shape); return orig(self, ikm, x)
    monkeypatch.setattr(DenseUnit, '_forward_split', spy)
    return calls


@pytest.mark.parametrize('attention,t,bias', [('none', 0.0, False), ('ca', 0.0, False), ('sa', -0.25, True)])
@pytest.mark.parametrize('batch_conv', ['grouped', 'loop'])
def test_dense_unit_split_equals_reference(monkeypatch, attention, t, bias, batch_conv):
    """float64: the split unit (one image-specific conv of the input, plain convs of the growth channels by the constant
    attention) == the authors' per-conv IKM: outputs, input and every parameter gradient, each mode and IsO rule, replicas."""
    calls = _split_calls(monkeypatch)
    torch.manual_seed(0)
    u = DenseUnit(8, 4, 4, conv=conv_factory(True, t=t), kernel_size=3, attention=attention, bias=bias).double()
    for p in u.parameters(): p.data.normal_(0, 0.3)                       # biases too: some pixels of each growth map negative
    x = torch.randn(3, 8, 9, 6, dtype=torch.float64, requires_grad=True)
    gy = torch.randn(3, 8, 9, 6, dtype=torch.float64)
    for mode, red, reps in [('iso', 'mean', 1), ('iso', 'mean', 3), ('iso', 'sum', 1), ('exact', 'mean', 1), ('go', 'mean', 1)]:
        set_ikm_mode(u, mode, iso_reduction=red)
        for c in ikm_layers(u): c.iso_replicas = reps
        res = {}
        for impl in ('reference', 'fast'):
            set_ikm_impl(u, impl); u.zero_grad(); x.grad = None; calls.clear()
            with ikm_impl(batch_conv=batch_conv):
                y = u(x); y.backward(gy)
                with torch.no_grad(): y1, y3 = u(x[:1]), u(x)
            assert len(calls) == (3 if impl == 'fast' else 0)
            res[impl] = [y, x.grad, *_grads(u), y1, y3]
        for got, want in zip(res['fast'], res['reference']):
            assert _rel(got, want) < 1e-12, (mode, red, reps)


def test_dense_unit_split_only_where_exact(monkeypatch):
    "The split needs every growth pixel to pass the threshold: not for t > 0 or a per-map threshold, nor for mixed settings."
    calls = _split_calls(monkeypatch)
    x = torch.randn(2, 8, 6, 6)
    for t, split in [(0.0, True), (-1.0, True), (0.1, False), ('mean', False), ('median', False)]:
        calls.clear(); DenseUnit(8, 3, 4, conv=conv_factory(True, t=t))(x)
        assert bool(calls) == split, t
    u = DenseUnit(8, 3, 4, conv=conv_factory(True))
    u.layers[1].conv.mode = 'exact'
    calls.clear(); u(x); assert not calls
    calls.clear(); DenseUnit(8, 3, 4, conv=conv_factory(True), act=False)(x); assert not calls   # no ReLU: may be negative
    calls.clear(); DenseUnit(8, 3, 4)(x); assert calls                                              # plain: always exact
    calls.clear(); DenseUnit(8, 3, 4, split=False)(x); assert not calls
    u = DenseUnit(8, 3, 4, conv=conv_factory(True)); set_ikm_impl(u, 'reference')
    calls.clear(); u(x); assert not calls


def test_ikm_nonnegative_conv_is_the_ikm_conv_of_an_all_pass_map():
    torch.manual_seed(0)
    conv = IKMConv2d(5, 3, 3, padding=1, bias=False).double()
    x = torch.rand(4, 5, 7, 7, dtype=torch.float64)                       # no negative value
    gy = torch.randn(4, 3, 7, 7, dtype=torch.float64)
    for mode, red in [('iso', 'mean'), ('iso', 'sum'), ('exact', 'mean'), ('go', 'mean')]:
        conv.mode, conv.iso_reduction = mode, red
        out = []
        for f in (conv, conv.nonnegative_conv):
            conv.weight.grad = None
            y = f(x); y.backward(gy); out += [y, conv.weight.grad]
        assert _rel(out[2], out[0]) < 1e-14 and _rel(out[3], out[1]) < 1e-14, mode
    assert abs(conv.attention(x)[0, 0, 0, 0].item() - 1.5) < 1e-15
    with pytest.raises(ValueError, match='t <= 0'):
        IKMConv2d(5, 3, 3, t='mean').nonnegative_conv(x.float())


def test_dense_buffer_equals_concatenation():
    torch.manual_seed(0)
    for conv in (nn.Conv2d, conv_factory(True)):
        u = DenseUnit(8, 5, 4, conv=conv).double().requires_grad_(False)
        for x in (torch.randn(1, 8, 7, 9, dtype=torch.float64), torch.randn(3, 8, 7, 9, dtype=torch.float64),
                  torch.randn(2, 8, 7, 9, dtype=torch.float64).contiguous(memory_format=torch.channels_last)):
            y_cat = u(x)                                                  # grad mode: torch.cat
            with torch.no_grad(): y_buf = u(x)                            # no grad: one pre-allocated buffer
            assert _rel(y_buf, y_cat) < 1e-14


def test_uhdn_fast_equals_reference():
    "float64, a small U-HDN: the network's output and every parameter's gradient, training and inference, each mode."
    torch.manual_seed(0)
    m = UHDN(n_blocks=1, channels=8, growth=4, depths=(4, 4, 4, 4, 4, 4)).double()
    x = torch.rand(2, 3, 9, 12, dtype=torch.float64)
    for mode in ('iso', 'exact', 'go'):
        m.set_ikm_mode(mode)
        res = {}
        for impl in ('reference', 'fast'):
            set_ikm_impl(m, impl); m.zero_grad(); m.train()
            y = m(x); y.square().mean().backward()
            m.eval()
            with torch.no_grad(): yi = m(x[:1])
            res[impl] = [y, *_grads(m), yi]
        for got, want in zip(res['fast'], res['reference']):
            assert _rel(got, want) < 1e-11, mode


@pytest.mark.parametrize('act,attention', [(True, 'none'), (False, 'ca')])
def test_plain_dense_unit_split_equals_concatenation(act, attention):
    "float64, no IKM: the split unit == every conv on the concatenation (outputs, input and parameter gradients, no-grad)."
    torch.manual_seed(0)
    u = DenseUnit(8, 4, 4, act=act, attention=attention, bias=True).double()
    x = torch.randn(3, 8, 9, 6, dtype=torch.float64, requires_grad=True)
    gy = torch.randn(3, 8, 9, 6, dtype=torch.float64)
    res = {}
    for split in (False, True):
        set_dense_split(u, split); u.zero_grad(); x.grad = None
        y = u(x); y.backward(gy)
        with torch.no_grad(): y1 = u(x[:1])
        res[split] = [y, x.grad, *_grads(u), y1]
    for got, want in zip(res[True], res[False]):
        assert _rel(got, want) < 1e-12


def _buffer_calls(monkeypatch):
    "Spy on `_buffer_applies`: the verdict of each split unit's training forward (True: through `_GrowthBuffer`)."
    import ikm_nb.arch as A
    calls, orig = [], A._buffer_applies
    def spy(*a): calls.append(orig(*a)); return calls[-1]
    monkeypatch.setattr(A, '_buffer_applies', spy)
    return calls


@pytest.mark.parametrize('batch_conv', ['grouped', 'loop'])
def test_dense_buffer_trains_as_the_concatenation(monkeypatch, batch_conv):
    """float64: the split unit trained through its buffer (`_GrowthBuffer`, a backward by hand) == the authors' concatenating
    unit: outputs, input and every parameter gradient, plain and IKM in each mode and IsO rule; two units in a row. And the
    same bits as the split unit grown by concatenations."""
    calls = _buffer_calls(monkeypatch)
    torch.manual_seed(0)
    for conv in (nn.Conv2d, conv_factory(True)):
        u = nn.Sequential(DenseUnit(8, 4, 4, conv=conv), DenseUnit(8, 1, 3, conv=conv)).double()
        for p in u.parameters(): p.data.normal_(0, 0.3)
        x = torch.randn(3, 8, 9, 6, dtype=torch.float64, requires_grad=True)
        gy = torch.randn(3, 8, 9, 6, dtype=torch.float64)
        for mode, red in ([('iso', 'mean'), ('iso', 'sum'), ('exact', 'mean'), ('go', 'mean')] if conv is not nn.Conv2d
                          else [(None, None)]):
            if mode: set_ikm_mode(u, mode, iso_reduction=red)
            res = {}
            for how in ('concatenation', 'cat', 'buffer'):
                set_dense_split(u, how != 'concatenation'); set_dense_buffer(u, how == 'buffer')
                u.zero_grad(); x.grad = None; calls.clear()
                with ikm_impl(batch_conv=batch_conv):
                    y = u(x); y.backward(gy)
                assert calls == ([] if how == 'concatenation' else [how == 'buffer'] * 2)
                res[how] = [y, x.grad, *_grads(u)]
            for how in ('cat', 'buffer'):
                for got, want in zip(res[how], res['concatenation']): assert _rel(got, want) < 1e-12, (how, mode, red)
            assert all(torch.equal(a, b) for a, b in zip(res['buffer'], res['cat']))   # the same additions in the same order


def test_dense_buffer_where_it_applies(monkeypatch):
    "'auto' trains through the buffer on CUDA only; True wherever the layers are bias-free ReLU convs and the input contiguous."
    calls = _buffer_calls(monkeypatch)
    x = torch.randn(2, 8, 6, 6)
    def applies(u, x=x): calls.clear(); u(x); return calls
    assert applies(DenseUnit(8, 3, 4)) == [False]                                            # 'auto' on a CPU
    assert applies(set_dense_buffer(DenseUnit(8, 3, 4), True)) == [True]
    assert applies(set_dense_buffer(DenseUnit(8, 3, 4, conv=conv_factory(True)), True)) == [True]
    for kw in (dict(bias=True), dict(attention='ca'), dict(attention='sa')):
        assert applies(set_dense_buffer(DenseUnit(8, 3, 4, **kw), True)) == [False], kw
    assert applies(set_dense_buffer(DenseUnit(8, 3, 4), True), x.contiguous(memory_format=torch.channels_last)) == [False]
    with torch.no_grad(): assert applies(set_dense_buffer(DenseUnit(8, 3, 4), True)) == []   # no grad: its own buffer path
    with pytest.raises(ValueError, match="'auto', True or False"): set_dense_buffer(DenseUnit(8, 3, 4), 'yes')


def test_dense_buffer_runs_fewer_operators_and_keeps_less():
    """The buffer's purpose: no concatenation per layer (the only cats left are `unit_kernels`' two per unit) and fewer
    operators per training step than the concatenating split; autograd keeps the buffer instead of the d concatenations:
    at most 0.7x the bytes (storages counted once each; measured 0.62-0.65x for this one-block U-HDN at 32x32, ~0.55x for
    the full U-HDN: `benchmarks/bench_buffer.py`)."""
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32)
    for ikm in (False, True):
        m = UHDN(preset('uhdn', n_blocks=1, ikm=ikm))
        n_units = sum(isinstance(u, DenseUnit) for u in m.modules())
        ops, kept = {}, {}
        for buffer in (False, True):
            set_dense_buffer(m, buffer)
            with ikm_impl(batch_conv='grouped'): ops[buffer] = _ops_per_step(m, x)
            storages = {}
            def pack(t): s = t.untyped_storage(); storages[s.data_ptr()] = s.nbytes(); return t
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), ikm_impl(batch_conv='grouped'): y = m(x)
            kept[buffer] = sum(storages.values()); y.mean().backward()
        assert ops[True]['cat'] <= 2 * n_units < ops[False]['cat'], (ops[True]['cat'], ops[False]['cat'])
        assert sum(ops[True].values()) < sum(ops[False].values()) and 'slice_backward' not in ops[True]
        assert kept[True] <= 0.7 * kept[False], (kept[True], kept[False])


@pytest.mark.parametrize('ikm', [False, True])
def test_split_unit_refuses_a_wrong_channel_count(ikm):
    "The split slices the kernels by the input's channels: a wrong input must fail as loudly as the concatenating unit does."
    u = DenseUnit(8, 3, 4, conv=conv_factory(ikm))
    for bad in (torch.randn(2, 6, 7, 7), torch.randn(2, 10, 7, 7)):
        with pytest.raises(ValueError, match=r'takes \(B, 8, H, W\) inputs'): u(bad)
        with pytest.raises((RuntimeError, ValueError)): set_dense_split(u, False)(bad)
        set_dense_split(u, True)


# ---------------------------------------------------------------- the split unit's kernels in one gather
@pytest.mark.parametrize('cl_in,cl_out', [(False, False), (True, False), (False, True), (True, True)])
def test_unit_kernels_equal_the_slices(cl_in, cl_out):
    """float64: `unit_kernels` == the kernel slices it replaces (x-slices stacked, growth slices times c), in both layouts;
    its backward == autograd through those slices with the growth slices' gradient scaled by s instead of c (x-slices: s_x)."""
    from ikm_nb.arch import unit_kernels
    from ikm_nb.ikm import _ConstModulation
    torch.manual_seed(0)
    C, g, c, s = 5, 3, 1.5, 0.125
    mf = torch.channels_last if cl_in else torch.contiguous_format
    ws = [torch.randn(g, C + i * g, 3, 3, dtype=torch.float64).to(memory_format=mf).requires_grad_() for i in range(4)]
    s_x = 0.5 if cl_in else 1.0                                           # the x-slices' gradient scaled too, or not
    got = unit_kernels(ws, C, c, s, s_x, channels_last=cl_out)
    want = [_ConstModulation.apply(torch.cat([w.narrow(1, 0, C) for w in ws]), 1.0, s_x)] + [
        _ConstModulation.apply(w.narrow(1, C, i * g), c, s) for i, w in enumerate(ws) if i]
    assert [tuple(t.shape) for t in got] == [tuple(t.shape) for t in want]
    for t in got:
        assert t.is_contiguous(memory_format=torch.channels_last if cl_out else torch.contiguous_format)
    gs = [torch.randn_like(t) for t in want]
    grads = []
    for outs in (got, want):
        for w in ws: w.grad = None
        torch.autograd.backward(outs, gs)
        grads.append([w.grad.clone() for w in ws])
    for a, b in zip(got, want): assert torch.equal(a, b.detach())
    for a, b in zip(*grads): assert torch.equal(a, b)
    for w, gw in zip(ws, grads[0]): assert gw.stride() == w.stride()    # the parameter's layout (gradients stealable)
    with torch.no_grad(): assert all(torch.equal(a, b) for a, b in zip(unit_kernels(ws, C, c, s, channels_last=cl_out), got))


def test_split_unit_channels_last_and_autocast():
    """A channels-last network (float64) runs split with the same numbers as the concatenation; under autocast (bf16 on the
    CPU) the split unit's kernels are cast once and its outputs and float32 gradients match the concatenation's."""
    torch.manual_seed(0)
    m = UHDN(preset('uhdn', n_blocks=1, n_units=4, channels=16, growth=4, depths=(3, 2, 2, 3))).double().to(memory_format=torch.channels_last)
    x = torch.rand(2, 3, 9, 9, dtype=torch.float64).to(memory_format=torch.channels_last)
    res = {}
    for split in (False, True):
        set_dense_split(m, split); m.zero_grad()
        y = m(x); y.square().mean().backward()
        res[split] = [y, *_grads(m)]
    for a, b in zip(res[True], res[False]): assert _rel(a, b) < 1e-12
    m = m.float().to(memory_format=torch.contiguous_format)
    res = {}
    for split, bf16 in [(False, False), (False, True), (True, True)]:
        set_dense_split(m, split); m.zero_grad()
        with torch.autocast('cpu', torch.bfloat16, enabled=bf16):
            y = m(x.float())
        y.float().square().mean().backward()
        res[split, bf16] = [y.float(), *_grads(m)]
        assert all(p.grad.dtype == torch.float32 for p in m.parameters())
    l2 = lambda a, b: ((a - b).norm() / b.norm()).item()
    for a, b, exact in zip(res[True, True], res[False, True], res[False, False]):   # bf16 rounding: as far from float32
        assert l2(a, exact) <= max(2 * l2(b, exact), 0.01), (l2(a, exact), l2(b, exact))


def _ops_per_step(m, x):
    "Computing aten operators of one forward + backward of `m` on `x` (after a warm-up: the kernel index is built once)."
    def step():
        m.zero_grad(set_to_none=True); m(x).mean().backward()
    return count_ops(step)


def test_split_unit_runs_few_kernels():
    """On a GPU an eager step is bound by its kernel launches: the split unit must not cost many more operators than the
    authors' concatenating unit. Without IKM at most 1.3x; with IKM (the CAG of each unit's input, the image-specific conv of
    it) at most 1.8x the vanilla concatenating unit; no zero-filled full-size gradient of a slice (slice_backward) at all."""
    torch.manual_seed(0)
    x = torch.rand(2, 3, 12, 12)
    cfg = preset('uhdn', n_blocks=1)
    vanilla = _ops_per_step(set_dense_split(UHDN(cfg.replace(ikm=False)), False), x)
    split = _ops_per_step(UHDN(cfg.replace(ikm=False)), x)
    with ikm_impl(batch_conv='grouped'): ours = _ops_per_step(UHDN(cfg), x)     # (as on a GPU; one-thread CPU loops)
    for k in (split, ours): assert 'slice_backward' not in k, k
    n = lambda k: sum(k.values())
    assert n(split) <= 1.3 * n(vanilla), (n(split), n(vanilla))
    assert n(ours) <= 1.8 * n(vanilla), (n(ours), n(vanilla))


def test_ikm_uhdn_traces_without_graph_breaks():
    """torch.compile sees the whole U-HDN+IKM training forward as one graph (no Python fallback in the middle): the split
    units' kernel gather, the IsO Function and the constant attention (computed at import) all trace."""
    torch._dynamo.reset()
    m = UHDN(preset('uhdn', n_blocks=1, n_units=2, channels=16, growth=4, depths=(2, 2)))
    e = torch._dynamo.explain(m)(torch.rand(2, 3, 12, 12))
    assert (e.graph_count, e.graph_break_count) == (1, 0), [str(b.reason)[:200] for b in e.break_reasons]


def test_bench_buffer_script_runs(capsys, monkeypatch):
    "`benchmarks/bench_buffer.py` at a tiny size: its five rows, and the buffer's outputs and gradients the same bits as cat."
    from pathlib import Path
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / 'benchmarks'))
    import bench_buffer
    bench_buffer.main(['--blocks', '1', '--batch', '2', '--patch', '12', '--rounds', '1'])
    rows = [l for l in capsys.readouterr().out.splitlines() if l.startswith('| vanilla') or l.startswith('| ours')]
    assert [r.split(' | ')[:2] for r in rows] == [['| vanilla', '-'], ['| vanilla-split', 'cat'], ['| vanilla-split', 'buf'],
                                                  ['| ours', 'cat'], ['| ours', 'buf']]
    assert sum(r.endswith('| 0 (same bits) |') for r in rows) == 2
