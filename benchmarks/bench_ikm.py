#!/usr/bin/env python
"""U-HDN: vanilla vs the authors' grouped-conv IKM (reference) vs our fast IKM path, training step and inference.

One table: {setting} x {vanilla, vanilla-split, reference, ours, ...} x {train step, inference} on one device, with the
median time, the ratio to the vanilla model of the same setting measured in the same run (interleaved rounds), the spread
and the peak memory. The rows:

  vanilla       U-HDN without IKM as the authors run it: each dense unit's convs read the whole concatenation
  vanilla-split U-HDN without IKM as this library runs it: dense units split (one conv of the unit's input by every
                layer's kernels on it, then convs of the growth channels only; same numbers, see nbs/02_arch.ipynb)
  reference     the authors' IKM: adaptive_avg_pool CAG in every layer, grouped conv, per-image kernel gradients averaged
  ours          the library default: fast IKM layers, dense units split (the growth channels' attention is a constant)
  ours-grouped / ours-loop: ours with the batch's kernels applied as one grouped conv / one image at a time
  ours-cat      the fast IKM layers without the split (each channel's attention once, every conv on the concatenation)

  On CUDA the split rows train their dense units through one buffer (`set_dense_buffer`, 'auto'); on a CPU through
  concatenations (`benchmarks/bench_buffer.py` compares the two).

  train step: batch 16 of 48x48 LR patches (x2: 96x96 HR targets), forward + L1 loss + backward + Adam
  inference : one 240x180 LR image (width x height; tensor 1x3x180x240), forward under torch.no_grad()

Defaults (CPU): the full U-HDN x2 (N=4 blocks), torch's thread count, setting `eager`, 3 timed rounds after 1 warm-up, the
rows vanilla, vanilla-split, reference, ours: about 3 minutes on a quiet 2-core machine with 2 threads, 5 with
`--threads 1` (a full-model train step takes 3-10 s there; `--blocks 1` is ~3x quicker).
Defaults (CUDA): settings eager (TF32 on), cudagraph, bf16-cl (autocast bf16 + channels_last), compile (vanilla and ours
only), cudagraph-bf16-cl; rows vanilla, vanilla-split, reference, ours (= ours-grouped on CUDA), ours-loop; 15 timed rounds.
Rows that would start after `--budget-s` (default 130 s on CUDA) are skipped and a compile that takes over
`--prepare-timeout-s` (default 60 s) is abandoned, so the whole run stays within about 3 minutes.

  .venv/bin/python benchmarks/bench_ikm.py                                  # CPU, full model
  .venv/bin/python benchmarks/bench_ikm.py --threads 1,2 --repeats 5 --out docs/benchmarks.md
  python benchmarks/bench_ikm.py --device cuda --out docs/benchmarks.md        # on a GPU machine, with a CUDA build of torch

Before timing, `--check` (on by default) compares ours with the reference on the benchmark's device in float64 (outputs, input
gradient and each mode's weight gradient on a small U-HDN), so a GPU run also checks the fast path's GPU kernels.
"""
from __future__ import annotations
import argparse, contextlib, copy, datetime, gc, os, signal, statistics, sys, time, traceback
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ikm_nb.arch import UHDN, preset, set_dense_split                       # noqa: E402
from ikm_nb.ikm import ikm_impl, set_ikm_impl, set_ikm_mode, ikm_layers     # noqa: E402
from ikm_nb.utils import device_name                                         # noqa: E402

# ------------------------------------------------------------------------------------------------ models
# row name: (ikm?, impl, batch_conv, dense units split?)
CPU_SETTINGS = 'eager'
CUDA_SETTINGS = 'eager,cudagraph,bf16-cl,compile,cudagraph-bf16-cl'
MODELS = {
    'vanilla': (False, None, None, False),         # U-HDN without IKM as the authors run it: every conv reads the concatenation
    'vanilla-split': (False, None, None, True),    # the library's U-HDN without IKM (dense units split, same numbers)
    'reference': (True, 'reference', None, False), # the authors' IKM: grouped conv, per-image kernel gradients
    'ours': (True, 'fast', 'auto', True),          # the library default
    'ours-grouped': (True, 'fast', 'grouped', True),
    'ours-loop': (True, 'fast', 'loop', True),
    'ours-cat': (True, 'fast', 'auto', False),     # the fast IKM layers without the split (each channel's attention once)
}


def build(name, args, device, memory_format=torch.contiguous_format):
    ikm, impl, _, split = MODELS[name]
    cfg = preset(args.model, scale=args.scale, ikm=ikm, **({'n_blocks': args.blocks} if args.blocks else {}))
    torch.manual_seed(0)
    m = UHDN(cfg.replace(ikm=False))                  # same initial weights for every row
    if ikm:
        sd = m.state_dict()
        m = UHDN(cfg); m.load_state_dict(sd)
        set_ikm_impl(m, impl)
    set_dense_split(m, split)
    return m.to(device=device, memory_format=memory_format)


def options(name):
    "The module options a row runs under."
    bc = MODELS[name][2]
    return ikm_impl(batch_conv=bc) if bc else contextlib.nullcontext()


# ------------------------------------------------------------------------------------------------ settings
class Runner:
    "One (setting, model, task): `prepare()` once, then `run()` per timed call."
    def __init__(self, name, setting, task, args, device):
        self.name, self.setting, self.task, self.args, self.device = name, setting, task, args, device
        self.cl = setting.endswith('channels_last') or setting.endswith('bf16-cl')
        self.amp = torch.bfloat16 if 'bf16' in setting else None
        self.graphed = setting.startswith('cudagraph')
        fmt = torch.channels_last if self.cl else torch.contiguous_format
        self.model = build(name, args, device, fmt)
        g = torch.Generator().manual_seed(1)
        s = args.scale
        if task == 'train':
            self.x = torch.rand(args.batch, 3, args.patch, args.patch, generator=g).to(device, memory_format=fmt)
            self.t = torch.rand(args.batch, 3, args.patch * s, args.patch * s, generator=g).to(device, memory_format=fmt)
            self.model.train()
            self.opt = torch.optim.Adam(self.model.parameters(), lr=2e-4, capturable=self.graphed)
        else:
            w, h = args.lr_size
            self.x = torch.rand(1, 3, h, w, generator=g).to(device, memory_format=fmt)
            self.model.eval()
        self.fn = self._eager
        self.graph = None

    def _autocast(self):
        if not self.amp: return contextlib.nullcontext()
        # a captured graph must not keep autocast's cache of cast weights (made outside its memory pool)
        return torch.autocast(self.device.type, dtype=self.amp, cache_enabled=not self.graphed)

    def _step(self):
        "One training step (forward, L1, backward, Adam; the gradients already zeroed) or one inference."
        if self.task == 'train':
            with self._autocast():
                loss = F.l1_loss(self.model(self.x).float(), self.t)
            loss.backward()
            self.opt.step()
        else:
            with torch.no_grad(), self._autocast():
                self.y = self.model(self.x)

    def _eager(self):
        with options(self.name):
            if self.task == 'train': self.opt.zero_grad(set_to_none=True)
            self._step()

    def prepare(self):
        "Warm up; capture a CUDA graph or compile, as the setting says."
        if self.setting == 'compile':
            self.model = torch.compile(self.model)
        if self.graphed:
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                for _ in range(3): self._eager()
            torch.cuda.current_stream().wait_stream(s)
            self.graph = torch.cuda.CUDAGraph()
            if self.task == 'train': self.opt.zero_grad(set_to_none=True)
            with options(self.name), torch.cuda.graph(self.graph):
                self._step()
            self.fn = self.graph.replay
        for _ in range(self.args.warmup): self.fn()
        sync(self.device)

    def run(self) -> float:
        sync(self.device)
        t0 = time.perf_counter()
        self.fn()
        sync(self.device)
        return time.perf_counter() - t0

    def peak_memory(self) -> float | None:
        "Peak bytes allocated during one call above those allocated at its start (MiB)."
        try:
            if self.device.type == 'cuda':
                sync(self.device)
                base = torch.cuda.memory_allocated(self.device)
                torch.cuda.reset_peak_memory_stats(self.device)
                self.fn(); sync(self.device)
                return (torch.cuda.max_memory_allocated(self.device) - base) / 2**20
            from torch.profiler import profile, ProfilerActivity
            with quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as p:
                self.fn()
            evs = sorted((e.start_ns(), e.nbytes()) for e in p.profiler.kineto_results.events() if e.name() == '[memory]')
            cur = peak = 0
            for _, n in evs:
                cur += n; peak = max(peak, cur)
            return peak / 2**20
        except Exception:
            return None


class PrepareTimeout(Exception): pass


@contextlib.contextmanager
def time_limit(seconds):
    "Raise PrepareTimeout in the main thread after `seconds` (a long compile or capture); no limit for None."
    if not seconds or not hasattr(signal, 'SIGALRM'):
        yield; return
    def handler(signum, frame): raise PrepareTimeout(f"preparing took over {seconds:.0f} s")
    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try: yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@contextlib.contextmanager
def quiet_stderr():
    "Silence the profiler's native log lines on fd 2."
    try:
        sys.stderr.flush(); saved = os.dup(2); devnull = os.open(os.devnull, os.O_WRONLY); os.dup2(devnull, 2)
    except OSError:
        yield; return
    try: yield
    finally:
        os.dup2(saved, 2); os.close(saved); os.close(devnull)


def sync(device):
    if device.type == 'cuda': torch.cuda.synchronize(device)


# ------------------------------------------------------------------------------------------------ equivalence check
def check_equivalence(device) -> list[str]:
    "Ours vs the reference on `device` in float64: output, input gradient, each mode's weight gradient (max relative error)."
    lines = []
    torch.manual_seed(0)
    cfg = preset('uhdn', n_blocks=1, depths=(4, 4), n_units=2)
    base = UHDN(cfg).double().to(device)
    x = torch.rand(3, 3, 13, 10, dtype=torch.float64, device=device)
    def run(model, impl, bc, mode, red, train=True):
        m = copy.deepcopy(model); set_ikm_impl(m, impl); set_ikm_mode(m, mode, iso_reduction=red); m.train(train)
        xi = x.clone().requires_grad_()
        with ikm_impl(batch_conv=bc or 'auto'):
            y = m(xi)
            y.square().mean().backward()
        gw = torch.cat([l.weight.grad.flatten() for l in ikm_layers(m)])
        return y.detach(), xi.grad, gw
    rel = lambda a, b: ((a - b).abs().max() / b.abs().max()).item()
    worst = 0.0
    for mode, red in [('iso', 'mean'), ('iso', 'sum'), ('exact', 'mean'), ('go', 'mean')]:
        ref = run(base, 'reference', None, mode, red)
        for bc in ('grouped', 'loop'):
            got = run(base, 'fast', bc, mode, red)
            errs = [rel(g, r) for g, r in zip(got, ref)]
            worst = max(worst, *errs)
            lines.append(f"{mode}/{red} batch_conv={bc}: output {errs[0]:.1e}, input grad {errs[1]:.1e}, IKM weight grads {errs[2]:.1e}")
    with torch.no_grad():   # inference (batch 1, the dense buffer)
        m = copy.deepcopy(base).eval()
        yr = set_ikm_impl(m, 'reference')(x[:1]); yf = set_ikm_impl(m, 'fast')(x[:1])
    e = rel(yf, yr); worst = max(worst, e)
    lines.append(f"inference, batch 1: output {e:.1e}")
    lines.append(f"worst relative error {worst:.1e}: {'OK' if worst < 1e-10 else 'MISMATCH'}")
    return lines


# ------------------------------------------------------------------------------------------------ main
def fmt_mem(v): return 'n/a' if v is None else f'{v:.0f}'
def fmt_ratio(v): return '' if v is None else f'{v:.2f}x'


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--device', default='auto', help="cpu | cuda | auto (cuda if available)")
    p.add_argument('--threads', default=None, help="CPU threads, one count or a list: '1,2' (default: torch's)")
    p.add_argument('--repeats', type=int, default=None, help="timed rounds (default: CPU 3, CUDA 15)")
    p.add_argument('--warmup', type=int, default=None, help="untimed calls per runner after preparing (default: CPU 1, CUDA 3)")
    p.add_argument('--model', default='uhdn', help="preset name (default: the full U-HDN, N=4)")
    p.add_argument('--blocks', type=int, default=None, help="override N (e.g. 1 for a quick CPU run)")
    p.add_argument('--scale', type=int, default=2)
    p.add_argument('--batch', type=int, default=16)
    p.add_argument('--patch', type=int, default=48, help="LR patch side of the training step")
    p.add_argument('--lr-size', default='240x180', help="inference LR image, WIDTHxHEIGHT")
    p.add_argument('--models', default=None, help="rows, comma-separated, of " + ', '.join(MODELS)
                   + " (default: vanilla,vanilla-split,reference,ours; CUDA adds ours-loop)")
    p.add_argument('--settings', default=None, help="comma-separated, of: eager (fp32; TF32 on CUDA), channels_last, bf16 (autocast), bf16-cl (autocast + "
                   "channels_last), compile (torch.compile, default mode); CUDA only: fp32 (TF32 off), cudnn-benchmark, "
                   "cudagraph, cudagraph-bf16-cl (the whole step captured once, replayed), cudagraph-bench, "
                   "cudagraph-bench-bf16-cl (captured after cuDNN timed its algorithms: torch.backends.cudnn.benchmark) "
                   f"(default: CPU {CPU_SETTINGS}; CUDA {CUDA_SETTINGS})")
    p.add_argument('--prepare-timeout-s', type=float, default=None,
                   help="give up compiling one row after this many seconds (default: CUDA 60)")
    p.add_argument('--tasks', default='train,infer')
    p.add_argument('--budget-s', type=float, default=None,
                   help="skip rows that would start preparing after this many seconds (default: CUDA 130, CPU none)")
    p.add_argument('--no-check', dest='check', action='store_false', help="skip the float64 equivalence check")
    p.add_argument('--out', default=None, help="also write the table (markdown, with device, date and command) here")
    args = p.parse_args(argv)

    dev = torch.device('cuda' if args.device == 'auto' and torch.cuda.is_available() else
                       ('cpu' if args.device == 'auto' else args.device))
    cuda = dev.type == 'cuda'
    args.lr_size = tuple(int(v) for v in args.lr_size.lower().split('x'))
    args.repeats = args.repeats or (15 if cuda else 3)
    args.warmup = args.warmup if args.warmup is not None else (3 if cuda else 1)
    models = (args.models or ('vanilla,vanilla-split,reference,ours,ours-loop' if cuda else
                              'vanilla,vanilla-split,reference,ours')).split(',')
    if 'vanilla' not in models: models.insert(0, 'vanilla')
    settings = (args.settings or (CUDA_SETTINGS if cuda else CPU_SETTINGS)).split(',')
    tasks = args.tasks.split(',')
    threads = [int(t) for t in args.threads.split(',')] if args.threads else [torch.get_num_threads()]
    if cuda: threads = threads[:1]
    if args.budget_s is None and cuda: args.budget_s = 130.0
    if args.prepare_timeout_s is None and cuda: args.prepare_timeout_s = 60.0

    start = time.time()
    when = datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')
    dname = device_name(dev)
    head = [f"device: {dname} ({dev.type}); torch {torch.__version__}; {when}",
            f"command: {' '.join([Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:]))}",
            f"model: preset {args.model!r} x{args.scale}" + (f", N={args.blocks}" if args.blocks else '')
            + f"; train: batch {args.batch} of {args.patch}x{args.patch} LR, fwd+bwd+Adam; infer: one "
            f"{args.lr_size[0]}x{args.lr_size[1]} LR image, no grad; {args.repeats} timed rounds (interleaved), "
            f"{args.warmup} warm-up"]
    if not cuda: head.append(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    for h in head: print(h, flush=True)

    check_lines = []
    if args.check:
        try:
            torch.set_num_threads(threads[0])
            check_lines = check_equivalence(dev)
        except Exception as e:
            check_lines = [f"equivalence check failed to run: {type(e).__name__}: {e}"]
        for l in check_lines: print('check:', l, flush=True)

    rows, notes = [], []
    for nt in threads:
        torch.set_num_threads(nt)
        for setting in settings:
            if cuda:
                torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = setting != 'fp32'
                torch.backends.cudnn.benchmark = setting == 'cudnn-benchmark' or '-bench' in setting
            for task in tasks:
                runners = {}
                for name in models:
                    if setting.startswith('compile') and name not in ('vanilla', 'vanilla-split', 'ours') and args.models is None: continue
                    if args.budget_s and time.time() - start > args.budget_s:
                        notes.append(f"{setting}/{name}/{task} skipped: the {args.budget_s:.0f} s budget was spent"); continue
                    try:
                        r = Runner(name, setting, task, args, dev)
                        t0 = time.time()
                        with time_limit(args.prepare_timeout_s if setting.startswith('compile') else None): r.prepare()
                        if setting.startswith(('compile', 'cudagraph')):
                            notes.append(f"{setting}/{name}/{task}: prepared in {time.time() - t0:.0f} s")
                        runners[name] = r
                    except Exception as e:
                        notes.append(f"{setting}/{name}/{task} failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
                        traceback.print_exc(limit=3)
                times = {n: [] for n in runners}
                for _ in range(args.repeats):            # interleaved rounds: every model once per round
                    for n, r in runners.items():
                        try: times[n].append(r.run())
                        except Exception as e:
                            notes.append(f"{setting}/{n}/{task} failed while timing: {type(e).__name__}: {e}")
                            times[n] = []; runners[n].fn = None; break
                    runners = {n: r for n, r in runners.items() if r.fn is not None}
                base = statistics.median(times['vanilla']) if times.get('vanilla') else None
                for n, r in runners.items():
                    ts = times[n]
                    if not ts: continue
                    med = statistics.median(ts)
                    q = statistics.quantiles(ts, n=4) if len(ts) >= 4 else [min(ts), med, max(ts)]
                    spread = 100 * (q[2] - q[0]) / med
                    mem = r.peak_memory()
                    bmin = min(times['vanilla']) if times.get('vanilla') else None
                    bsplit = statistics.median(times['vanilla-split']) if times.get('vanilla-split') else None
                    rows.append(dict(threads=nt if not cuda else '', setting=setting, task=task, model=n, ms=1e3 * med,
                                     ratio=med / base if base else None, spread=spread, mem=mem, n=len(ts),
                                     rsplit=med / bsplit if bsplit else None,
                                     min=1e3 * min(ts), rmin=min(ts) / bmin if bmin else None))
                    print(f"{setting:>13} {('t=' + str(nt)) if not cuda else '':>4} {task:>5} {n:>13}: {1e3 * med:9.1f} ms"
                          f"  x{(med / base if base else float('nan')):.3f}  spread {spread:4.1f}%  peak {fmt_mem(mem)} MiB",
                          flush=True)
                del runners; gc.collect()
                if cuda: torch.cuda.empty_cache()
    if not cuda: notes.append(f"load average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    notes.append(f"total wall time {time.time() - start:.0f} s")

    task_name = {'train': 'train step', 'infer': 'inference'}
    lines = ['| device | threads | setting | task | model | median ms | ratio to vanilla | ratio to vanilla-split | spread (IQR) '
             '| min ms | ratio of mins | peak MiB |', '|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|']
    short = dname if len(dname) < 40 else dname[:37] + '...'
    for r in rows:
        lines.append(f"| {short} | {r['threads']} | {r['setting']} | {task_name[r['task']]} | {r['model']} | {r['ms']:.1f} | "
                     f"{fmt_ratio(r['ratio'])} | {fmt_ratio(r['rsplit'])} | {r['spread']:.0f}% | {r['min']:.1f} | {fmt_ratio(r['rmin'])} | {fmt_mem(r['mem'])} |")
    mem_note = ("peak MiB: torch.cuda.max_memory_allocated during one call minus memory_allocated at its start"
                if cuda else "peak MiB: peak of live tensor bytes during one call above those live at its start "
                "(torch.profiler memory events; the CPU allocator has no peak counter)")
    table = '\n'.join(lines)
    print('\n' + table)
    for n in notes: print('note:', n)
    if args.out:
        out = Path(args.out); out.parent.mkdir(parents=True, exist_ok=True)
        text = '\n'.join([f"### U-HDN + IKM benchmark: {dname}, {when}", '',
                          *[f"- {h}" for h in head], f"- {mem_note}",
                          "- ratio: median of the row over the median of `vanilla` (or `vanilla-split`) in the same setting, "
                          "same run; spread: "
                          "interquartile range over the median; min ms / ratio of mins: the fastest round (the least "
                          "disturbed by other processes)", '', table, '',
                          *[f"- check: {l}" for l in check_lines], *[f"- note: {n}" for n in notes], ''])
        with open(out, 'a') as f: f.write(text + '\n')
        print(f"appended to {out}")


if __name__ == '__main__':
    main()
