#!/usr/bin/env python
"""Ways to run the split dense unit's one image-specific convolution, alone: x (B, C, H, W) convolved by each image's kernels
a_b * w, forward + input gradient + the IsO weight gradient, for the 24 such convolutions of a U-HDN+IKM x2 training step
(batch 16 of 48x48, C = 64, c_out 72 / 60 / 48). Variants: 'grouped' (the batch as groups, what the library runs on a GPU),
'grouped-cl' (the same in channels-last memory), 'loop' (one conv per image), 'unfold' (im2col, the attention applied to the
columns, one matmul by the shared kernel), and 'plain' (one shared kernel: the lower bound, what the layer costs without IKM).

  python benchmarks/unit_conv_variants.py cuda      # times, fp32/TF32 and bf16, cudnn.benchmark off and on
  python benchmarks/unit_conv_variants.py cpu       # the variants agree in float64 (small sizes)

Caveat (docs/benchmarks.md): in isolation bf16 'grouped' took 1.5x its float32 time on an H100, but running the whole
model's grouped convolutions in float32 under bf16 autocast did not change the step time; what this script measures does
not carry over to the full step one to one.
"""
import sys, time, torch, torch.nn.functional as F
cbw = torch.ops.aten.convolution_backward
dev = sys.argv[1] if len(sys.argv) > 1 else 'cuda'
B, C, H, W, K = (16, 64, 48, 48, 3) if dev == 'cuda' else (3, 5, 7, 6, 3)
P = [(1, 1), (1, 1), (1, 1)]

def v_grouped(x, w, a, gy, cl_conv=False):
    wh = (a[:, None] * w[None]).flatten(0, 1)                       # (B*Co, C, k, k)
    if cl_conv:   # batch-as-channels in channels-last memory: (h, w, b, c)
        xg = x.permute(2, 3, 0, 1).reshape(1, H, W, B * C).permute(0, 3, 1, 2)
        wh = wh.contiguous(memory_format=torch.channels_last)
    else:
        xg = x.reshape(1, B * C, H, W)
    y = F.conv2d(xg, wh, None, 1, 1, 1, B)
    if cl_conv: y = y.permute(2, 3, 0, 1).reshape(H, W, B, -1).permute(2, 3, 0, 1)   # (B, Co, H, W) in (b?..) -> view
    y = y.reshape(B, -1, H, W)
    gyg = gy.reshape(1, -1, H, W) if not cl_conv else gy.permute(2, 3, 0, 1).reshape(1, H, W, -1).permute(0, 3, 1, 2)
    gx = cbw(gyg, xg, wh, None, [1, 1], [1, 1], [1, 1], False, [0, 0], B, [True, False, False])[0]
    if cl_conv: gx = gx.permute(2, 3, 0, 1).reshape(H, W, B, C).permute(2, 3, 0, 1)
    gx = gx.reshape(B, C, H, W)
    gw = cbw(gy, x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, [False, True, False])[1]
    return y, gx, gw

def v_loop(x, w, a, gy):
    wh = a[:, None] * w[None]
    y = torch.cat([F.conv2d(x[b:b + 1], wh[b], None, 1, 1) for b in range(B)])
    gx = torch.cat([cbw(gy[b:b + 1], x[b:b + 1], wh[b], None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, [True, False, False])[0]
                    for b in range(B)])
    gw = cbw(gy, x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, [False, True, False])[1]
    return y, gx, gw

def v_unfold(x, w, a, gy):
    U = F.unfold(x, K, padding=1)                                    # (B, C*k*k, HW)
    a2 = a.reshape(B, -1, 1)
    w2 = w.reshape(w.shape[0], -1)
    y = (w2 @ (U * a2)).view(B, -1, H, W)
    g2 = gy.reshape(B, gy.shape[1], -1)
    gx = F.fold((w2.t() @ g2) * a2, (H, W), K, padding=1)
    gw = (g2 @ U.transpose(1, 2)).sum(0).view_as(w)
    return y, gx, gw

def v_plain(x, w, a, gy):   # lower bound: one shared kernel
    y = F.conv2d(x, w, None, 1, 1)
    gx, gw, _ = cbw(gy, x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, [True, True, False])
    return y, gx, gw

VARIANTS = {'grouped': v_grouped, 'grouped-cl': lambda *t: v_grouped(*t, cl_conv=True), 'loop': v_loop, 'unfold': v_unfold,
            'plain (lower bound)': v_plain}

def inputs(dt, cl, co):
    g = torch.Generator(device='cpu').manual_seed(0)
    mk = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64).to(dev, dt)
    x, w, a, gy = mk(B, C, H, W), mk(co, C, K, K), mk(B, C, K, K).abs() + .5, mk(B, co, H, W)
    if cl: x, gy = (t.contiguous(memory_format=torch.channels_last) for t in (x, gy))
    return x, w, a, gy

if dev == 'cpu':   # correctness in float64
    x, w, a, gy = inputs(torch.float64, True, 4)
    ref = v_grouped(x, w, a, gy)
    for n, f in VARIANTS.items():
        if 'plain' in n: continue
        out = f(x, w, a, gy)
        print(n, [float((o - r).abs().max()) for o, r in zip(out, ref)])
    sys.exit()

torch.backends.cuda.matmul.allow_tf32 = True; torch.backends.cudnn.allow_tf32 = True
def t_ms(f, args, n=40):
    for _ in range(5): f(*args)
    torch.cuda.synchronize()
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    res = []
    for _ in range(3):
        s.record()
        for _ in range(n): f(*args)
        e.record(); torch.cuda.synchronize(); res.append(s.elapsed_time(e) / n)
    return min(res)
print(torch.__version__, torch.cuda.get_device_name())
for bench in (False, True):
    torch.backends.cudnn.benchmark = bench
    for dt, cl in ((torch.float32, False), (torch.bfloat16, True), (torch.bfloat16, False)):
        tot = {}
        for co in (72, 60, 48):
            args = inputs(dt, cl, co)
            for n, f in VARIANTS.items():
                try: tot[n] = tot.get(n, 0) + 8 * t_ms(f, args)
                except Exception as ex: tot[n] = float('nan'); print(n, 'failed', repr(ex)[:200])
        print(f"cudnn.benchmark={bench} {str(dt)[6:]} {'channels-last' if cl else 'contiguous'}: ms for the 24 unit convs (fwd+gx+gw): "
              + ', '.join(f"{n} {v:.2f}" for n, v in tot.items()), flush=True)
