"""Training engine: resume after a real SIGKILL, DDP equivalence, bad checkpoints."""
import os, signal, subprocess, sys, time, csv, json
from pathlib import Path
import pytest, torch
from ikm_nb.checkpoint import load_checkpoint, CheckpointError, save_checkpoint, model_from_checkpoint
from ikm_nb.train import profile_config, train

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, 'PYTHONUNBUFFERED': '1', 'OMP_NUM_THREADS': '1'}

def cli(*args):
    return [sys.executable, '-m', 'ikm_nb.cli', 'train', '--profile', 'smoke', *args]

def weights(run_dir):
    return load_checkpoint(Path(run_dir) / 'checkpoints' / 'latest.pt')['model']

def assert_same(a, b, atol=0.0):
    assert list(a) == list(b)
    for k in a:
        if atol == 0: assert torch.equal(a[k], b[k]), k
        else: torch.testing.assert_close(a[k], b[k], rtol=0, atol=atol)

def latest_step(run_dir):
    p = Path(run_dir) / 'checkpoints' / 'latest.pt'
    try: return load_checkpoint(p)['step']
    except CheckpointError: return -1

def test_resume_after_sigkill_is_exact(tmp_path):
    common = ['--steps', '40', '--ckpt-every', '1', '--out-dir', str(tmp_path)]
    subprocess.run(cli(*common, '--run-name', 'straight'), check=True, cwd=ROOT, env=ENV, capture_output=True)
    run = tmp_path / 'killed'
    p = subprocess.Popen(cli(*common, '--run-name', 'killed'), cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while latest_step(run) < 3:
        assert p.poll() is None, 'the run ended before it could be killed'
        assert time.time() - t0 < 120, 'no checkpoint appeared'
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL); p.wait()
    killed_at = latest_step(run)
    assert 3 <= killed_at < 40, killed_at                  # killed mid-run
    r = subprocess.run(cli(*common, '--run-name', 'killed'), cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert latest_step(run) == 40
    assert_same(weights(tmp_path / 'straight'), weights(run))
    rows = list(csv.DictReader(open(run / 'metrics.csv')))
    assert [int(r['step']) for r in rows] == list(range(1, 41))   # no duplicated or missing rows after resume
    assert not list(run.rglob('*.tmp'))                           # no half-written file left behind

def test_ddp_two_processes_equal_one(tmp_path):
    "2 gloo processes with 2 images each == 1 process with the global batch of 4 (SGD: gradients enter the update unscaled)."
    common = ['--steps', '3', '--batch', '4', '--optimizer', 'sgd', '--lr', '0.05', '--out-dir', str(tmp_path)]
    r1 = subprocess.run(cli(*common, '--run-name', 'one'), cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert r1.returncode == 0, r1.stderr[-2000:]
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', '-m', 'ikm_nb.cli', 'train',
           '--profile', 'smoke', *common, '--run-name', 'two', '--device', 'cpu']
    r2 = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert r2.returncode == 0, r2.stderr[-3000:]
    one, two = weights(tmp_path / 'one'), weights(tmp_path / 'two')
    assert_same(one, two, atol=2e-6)
    start = model_from_checkpoint(load_checkpoint(tmp_path / 'one' / 'checkpoints' / 'latest.pt')).state_dict()
    ikm_w = [k for k in one if k.endswith('weight') and 'units' in k or 'body' in k][0]
    fresh = profile_config('smoke')
    # the updates themselves are not negligible: the comparison above would see a factor of 2 in the IsO mean
    torch.manual_seed(fresh.seed)
    from ikm_nb.train import build_model
    init = build_model(fresh).state_dict()
    delta = max((one[k] - init[k]).abs().max().item() for k in one if k.endswith('weight'))
    assert delta > 1e-3

def test_resume_refuses_other_settings(tmp_path):
    cfg = profile_config('smoke', steps=2, out_dir=str(tmp_path), run_name='r')
    train(cfg, progress=False)
    with pytest.raises(CheckpointError, match='other settings'):
        train(profile_config('smoke', steps=4, lr=1e-3, out_dir=str(tmp_path), run_name='r'), progress=False)
    with pytest.raises(CheckpointError, match='another model'):
        train(profile_config('smoke', steps=4, channels=24, out_dir=str(tmp_path), run_name='r'), progress=False)
    with pytest.raises(CheckpointError, match="other settings \\(t=0.0\\)"):   # an IKM setting is a setting of the run
        train(profile_config('smoke', steps=4, t=0.5, out_dir=str(tmp_path), run_name='r'), progress=False)

def test_resume_compares_the_network_as_built(tmp_path):
    "A preset and the fields it stands for are one run: the second spelling continues the first, a third network is refused."
    train(profile_config('smoke', arch='table5_dense', steps=2, out_dir=str(tmp_path), run_name='r'), progress=False)
    got = train(profile_config('smoke', arch='uhdn', depths=(5,) * 6, u_residual=False, steps=3, out_dir=str(tmp_path),
                               run_name='r'), progress=False)
    assert got['step'] == 3 and 'resumed at step 2' in (tmp_path / 'r' / 'train.log').read_text()
    with pytest.raises(CheckpointError, match='another model'):
        train(profile_config('smoke', arch='table5_u', steps=4, out_dir=str(tmp_path), run_name='r'), progress=False)

def test_truncated_checkpoint_is_refused(tmp_path):
    cfg = profile_config('smoke', steps=2, out_dir=str(tmp_path), run_name='r')
    train(cfg, progress=False)
    ck = tmp_path / 'r' / 'checkpoints' / 'latest.pt'
    data = ck.read_bytes(); ck.write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointError, match='not a readable checkpoint'):
        train(profile_config('smoke', steps=4, out_dir=str(tmp_path), run_name='r'), progress=False)

def test_validation_best_checkpoint_loads_safely(tmp_path):
    "best.pt (written after a validation) must load with weights_only=True: no numpy scalars inside."
    res = train(profile_config('smoke', steps=2, val_set='Set5', val_every=1, out_dir=str(tmp_path), run_name='v'), progress=False)
    st = load_checkpoint(Path(res['run_dir']) / 'checkpoints' / 'best.pt')
    assert isinstance(st['best_psnr'], float) and st['best_psnr'] == res['best_psnr']
    rows = list(csv.DictReader(open(Path(res['run_dir']) / 'metrics.csv')))
    assert all(r['psnr'] for r in rows)

def test_cuda_graph_setting_is_resume_safe_and_ignored_on_cpu(tmp_path):
    "`cuda_graph` changes no number: a run may be resumed with it flipped; on the CPU it is a no-op."
    a = train(profile_config('smoke', steps=4, out_dir=str(tmp_path), run_name='a', cuda_graph=False, device='cpu'), progress=False)
    train(profile_config('smoke', steps=2, out_dir=str(tmp_path), run_name='b', cuda_graph=True, device='cpu'), progress=False)
    b = train(profile_config('smoke', steps=4, out_dir=str(tmp_path), run_name='b', cuda_graph=False, device='cpu'), progress=False)
    assert b['step'] == 4
    assert_same(weights(a['run_dir']), weights(b['run_dir']))

@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_graph_training_equals_eager(tmp_path):
    "On a GPU: the graphed forward + backward replay gives the eager run's losses and weights."
    runs = {g: train(profile_config('smoke', steps=6, out_dir=str(tmp_path), run_name=f'g{g}', cuda_graph=g, device='cuda'),
                     progress=False) for g in (False, True)}
    losses = {g: [r['loss'] for r in csv.DictReader(open(Path(s['run_dir']) / 'metrics.csv'))] for g, s in runs.items()}
    assert losses[True] == losses[False]
    assert_same(weights(runs[False]['run_dir']), weights(runs[True]['run_dir']), atol=1e-6)

def test_config_records_the_resolved_training_set(tmp_path):
    import json
    s = train(profile_config('smoke', steps=1, out_dir=str(tmp_path), run_name='r', train_set='auto'), progress=False)
    data = json.loads((Path(s['run_dir']) / 'config.json').read_text())['data']
    assert data['train_set'] in ('DF2K', '291', 'T91') and data['images'] >= data['usable'] > 0

def _copy_images(src, dst, n):
    import shutil
    dst.mkdir(parents=True, exist_ok=True)
    for f in sorted(src.files)[:n]: shutil.copy(f, dst / f.name)
    return dst

def test_a_finished_run_is_reused_only_on_the_images_it_trained_on(tmp_path, monkeypatch):
    """Issue 16's sequence: a run trains with train_set='auto' where only the small set exists; more data appears; the same
    run is asked for again. It must refuse (naming both sets), not return the weights trained on the other images, and the
    checkpoint names what it was trained on."""
    import ikm_nb.data as D
    from ikm_nb.data import find_train_set
    t91 = find_train_set('T91')
    repo, shared = tmp_path / 'repo_data', tmp_path / 'shared'
    _copy_images(t91, repo / 'train' / 'T91', 91)
    monkeypatch.setattr(D, 'data_roots', lambda: [repo])
    monkeypatch.setattr(D, 'data_dir', lambda: repo)                     # its caches too: the repository's are not touched
    cfg = profile_config('smoke', steps=2, out_dir=str(tmp_path / 'runs'), run_name='r', train_set='auto', device='cpu')
    train(cfg, progress=False)
    st = load_checkpoint(tmp_path / 'runs' / 'r' / 'checkpoints' / 'latest.pt')
    assert st['data']['train_set'] == 'T91' and st['data']['images'] == 91
    assert train(cfg, progress=False)['step'] == 2                      # the same images: reused at once
    _copy_images(t91, shared / 'T91', 91)                               # 291 appears (T91 + BSD200; BSD200 faked with T91 images)
    bsd = shared / 'BSD200'; bsd.mkdir()
    for i, f in enumerate(sorted(t91.files) * 3):
        if i == 200: break
        (bsd / f'b{i:03d}{f.suffix}').write_bytes(f.read_bytes())
    monkeypatch.setattr(D, 'data_roots', lambda: [repo, shared])
    with pytest.raises(CheckpointError, match=r"was trained on T91 \(91 images.*now resolves to 291 \(291 images"):
        train(cfg, progress=False)
    folder = _copy_images(t91, tmp_path / 'mine', 5)                     # a folder whose images change between two calls
    cf = profile_config('smoke', steps=1, out_dir=str(tmp_path / 'runs'), run_name='f', train_set=str(folder), device='cpu')
    train(cf, progress=False)
    (folder / sorted(folder.iterdir())[0].name).unlink()
    with pytest.raises(CheckpointError, match='choose another run_name'):
        train(cf, progress=False)

def test_a_checkpoint_without_a_data_record_is_not_resumed(tmp_path):
    cfg = profile_config('smoke', steps=2, out_dir=str(tmp_path), run_name='old', device='cpu')
    train(cfg, progress=False, stop_after=1)
    p = tmp_path / 'old' / 'checkpoints' / 'latest.pt'
    st = torch.load(p, weights_only=True); del st['data']; torch.save(st, p)
    with pytest.raises(CheckpointError, match='holds no record of its training images'):
        train(cfg, progress=False)

@pytest.mark.parametrize('log_every', [1, 3])
def test_divergence_stops_before_a_bad_checkpoint(tmp_path, log_every):
    """A run that diverges (SGD with an absurd learning rate) stops with a FloatingPointError whether the loss is read every
    update or every third (it is read before each checkpoint); no checkpoint with non-finite weights is written."""
    cfg = profile_config('smoke', steps=12, optimizer='sgd', lr=1e30, log_every=log_every, ckpt_every=2, out_dir=str(tmp_path),
                         run_name='nan', device='cpu')
    with pytest.raises(FloatingPointError, match='lower the learning rate'):
        train(cfg, progress=False)
    latest = Path(tmp_path) / 'nan' / 'checkpoints' / 'latest.pt'
    if latest.exists():
        assert all(torch.isfinite(v).all() for v in load_checkpoint(latest)['model'].values() if v.is_floating_point())

def test_non_finite_weights_are_never_checkpointed(tmp_path, monkeypatch):
    "Weights that turn non-finite in the update of a checkpoint step (its loss was still finite) stop the run before the write."
    calls = {'n': 0}
    step = torch.optim.SGD.step
    def poisoned(self, *a, **k):
        out = step(self, *a, **k); calls['n'] += 1
        if calls['n'] == 4:
            with torch.no_grad(): self.param_groups[0]['params'][0][(0,) * self.param_groups[0]['params'][0].dim()] = float('nan')
        return out
    monkeypatch.setattr(torch.optim.SGD, 'step', poisoned)
    cfg = profile_config('smoke', steps=8, optimizer='sgd', log_every=5, ckpt_every=2, out_dir=str(tmp_path), run_name='w', device='cpu')
    with pytest.raises(FloatingPointError, match='weights are not finite after step 4'):
        train(cfg, progress=False)
    st = load_checkpoint(Path(tmp_path) / 'w' / 'checkpoints' / 'latest.pt')
    assert st['step'] == 2 and all(torch.isfinite(v).all() for v in st['model'].values() if v.is_floating_point())

def test_data_workers_and_log_every_change_no_number(tmp_path):
    """Batches depend on the step alone and the loss is only read back, so `workers` (batches cut in other processes) and
    `log_every` (how often the loss is read) leave the weights bit-identical."""
    runs = [train(profile_config('smoke', steps=4, out_dir=str(tmp_path), run_name=f'w{w}_l{l}', workers=w, log_every=l,
                                 device='cpu'), progress=False) for w, l in ((0, 1), (2, 3))]
    assert_same(weights(runs[0]['run_dir']), weights(runs[1]['run_dir']))
    assert runs[0]['loss'] == runs[1]['loss']

def test_channels_last_layout_same_numbers_up_to_rounding(tmp_path):
    """On the CPU a run is channels-last by default (`channels_last=None`) and says so in config.json; contiguous memory gives
    the same losses and weights up to float32 rounding, not bit for bit (other convolution kernels)."""
    import json
    runs = {cl: train(profile_config('smoke', steps=4, out_dir=str(tmp_path), run_name=f'cl{cl}', channels_last=cl, device='cpu'),
                      progress=False) for cl in (None, False)}
    fmt = {cl: json.loads((Path(s['run_dir']) / 'config.json').read_text())['memory_format'] for cl, s in runs.items()}
    assert fmt == {None: 'channels_last', False: 'contiguous'}
    assert_same(weights(runs[None]['run_dir']), weights(runs[False]['run_dir']), atol=1e-5)
    assert abs(runs[None]['loss'] - runs[False]['loss']) <= 1e-5 * abs(runs[False]['loss'])

@pytest.mark.parametrize('arch', ['uhdn', 'table5_dense'])
def test_dense_buffer_trains_the_same_bits(tmp_path, monkeypatch, arch):
    """Training contiguous (where the dense units' buffer applies) through `_GrowthBuffer` or through concatenations ends with
    the same weights, bit for bit, after 6 updates: what lets 'auto' turn the buffer on (CUDA) without changing a result."""
    import ikm_nb.arch as A
    orig, used = A._buffer_applies, []
    def forced(unit, x, yx):
        unit.buffer = force; used.append(orig(unit, x, yx)); return used[-1]
    monkeypatch.setattr(A, '_buffer_applies', forced)
    runs = {}
    for force in (False, True):
        used.clear()
        runs[force] = train(profile_config('smoke', arch=arch, steps=6, channels_last=False, out_dir=str(tmp_path),
                                           run_name=f'b{force}'), progress=False)
        assert used and all(u == force for u in used)
    assert_same(weights(runs[False]['run_dir']), weights(runs[True]['run_dir']))

def test_init_weights_starts_x3_from_x2_and_is_part_of_the_run(tmp_path):
    "x3 from trained x2 weights: all but the upsampler copied (train.log says so); a resume with another init is refused."
    from ikm_nb.checkpoint import load_checkpoint
    x2 = train(profile_config('smoke', steps=2, out_dir=str(tmp_path), run_name='x2'), progress=False)
    w2 = Path(x2['run_dir']) / 'checkpoints' / 'latest.pt'
    kw = dict(scale=3, optimizer='sgd', lr=1e-30, out_dir=str(tmp_path), run_name='x3')   # one update that changes nothing
    x3 = train(profile_config('smoke', steps=1, init_weights=str(w2), **kw), progress=False)
    got, want = load_checkpoint(Path(x3['run_dir']) / 'checkpoints' / 'latest.pt')['model'], load_checkpoint(w2)['model']
    assert [k for k in want if not torch.equal(got[k], want[k])] == ['upsample.0.weight']   # shapes differ there
    log = (Path(x3['run_dir']) / 'train.log').read_text()
    assert f"tensors from {w2} (after 2 updates, sha256" in log and "1 from the seed: upsample.0.weight" in log
    with pytest.raises(CheckpointError, match='init_weights'):
        train(profile_config('smoke', steps=2, **kw), progress=False)

def test_training_seconds_add_up_over_parts(tmp_path):
    "A run trained in two parts records the time of both: the checkpoint's seconds = first part's + second part's."
    cfg = profile_config('smoke', steps=4, out_dir=str(tmp_path), run_name='r')
    first = train(cfg, stop_after=2, progress=False)
    s1 = load_checkpoint(Path(first['run_dir']) / 'checkpoints' / 'latest.pt')['seconds']
    assert s1 == pytest.approx(first['seconds'], abs=0.2) and s1 > 0
    second = train(cfg, progress=False)
    s2 = load_checkpoint(Path(second['run_dir']) / 'checkpoints' / 'latest.pt')['seconds']
    assert s2 == pytest.approx(s1 + second['seconds'], abs=0.3) and second['total_seconds'] == pytest.approx(s2, abs=0.3)


def test_chain_metrics_counts_updates_from_the_seed(tmp_path):
    """Three runs of 300, 200 and 100 updates (the last one unfinished): one curve whose updates go on where the run before
    stopped, and begin where the network the first run began from had stopped."""
    from ikm_nb.train import chain_metrics
    for name, steps in (('a', [100, 200, 300]), ('b', [100, 200]), ('c', [100])):
        (tmp_path / name).mkdir()
        (tmp_path / name / 'metrics.csv').write_text('step,loss,psnr\n' + ''.join(f'{s},0.1,\n' for s in steps))
    m = chain_metrics([tmp_path / r for r in 'abc'])
    assert list(m.total_step) == [100, 200, 300, 400, 500, 600] and list(m.run) == list('aaabbc')
    assert list(m.step) == [100, 200, 300, 100, 200, 100]
    w = 'results/runs_cpu/cpu_uhdn-ikm_x2_a/weights.pt'   # 2,500 updates from the seed (committed): an x3 chain's start, say
    (tmp_path / 'a' / 'config.json').write_text(json.dumps(dict(train=dict(init_weights=w))))
    assert list(chain_metrics([tmp_path / r for r in 'abc']).total_step) == [2600, 2700, 2800, 2900, 3000, 3100]
