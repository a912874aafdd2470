"""Careless and hostile input, as issue 12 tried it: run folders, resume, checkpoints, tiles, outputs and errors. Each test
failed before its fix."""
import io, os, re, sys
from pathlib import Path
import numpy as np, pandas as pd
import pytest, torch
from PIL import Image
import ikm_nb.cli as cli
from ikm_nb.arch import preset
from ikm_nb.checkpoint import save_weights, load_checkpoint, model_from_checkpoint, CheckpointError
from ikm_nb.data import load_image, ImageReadError, DataNotFoundError
from ikm_nb.evaluate import evaluate, upscale
from ikm_nb.train import profile_config, train, RunBusyError, _run_lock

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / 'data' / 'benchmarks' / 'Set5' / 'bird.png'

@pytest.fixture(scope='module')
def tiny_weights(tmp_path_factory):
    torch.manual_seed(0)
    p = tmp_path_factory.mktemp('w') / 'x2.pt'
    save_weights(p, preset('uhdn', n_blocks=1, channels=16, growth=4, scale=2).build()); return p

def run_cli(*args):
    "Run `ikm` in this process: (exit code, stderr)."
    err = io.StringIO(); old = sys.stderr; sys.stderr = err
    try: cli.main([str(a) for a in args]); code = 0
    except SystemExit as e: code = e.code
    finally: sys.stderr = old
    return code, err.getvalue()

# ---------------------------------------------------------------- run folders and resume
def test_a_run_folder_has_one_owner(tmp_path):
    cfg = profile_config('smoke', steps=2, out_dir=str(tmp_path), run_name='r', device='cpu')
    with _run_lock(tmp_path / 'r', True):                       # another process owns the run
        with pytest.raises(RunBusyError, match='in use by another training run'): train(cfg, progress=False)
    assert not (tmp_path / 'r' / 'metrics.csv').exists()        # it wrote nothing there
    assert train(cfg, progress=False)['step'] == 2             # once released, the run goes ahead

def test_no_resume_starts_empty_and_exports_its_own_weights(tmp_path):
    common = ['train', '--profile', 'smoke', '--out-dir', tmp_path, '--run-name', 'r', '--device', 'cpu']
    assert run_cli(*common, '--steps', '2', '--val-set', 'Set5', '--val-every', '2')[0] == 0
    assert (tmp_path / 'r' / 'checkpoints' / 'best.pt').exists()
    code, _ = run_cli(*common, '--steps', '3', '--no-resume', '--save-weights', tmp_path / 'w.pt')
    assert code == 0
    assert not (tmp_path / 'r' / 'checkpoints' / 'best.pt').exists()          # the old run's best is not this run's
    budget = load_checkpoint(tmp_path / 'w.pt')['budget']
    assert budget['steps'] == 3 and budget['amp'] == 'off'
    assert re.fullmatch(r'cpu \(.+, \d+ logical CPUs, \d+ threads\)', budget['device']), budget['device']  # the CPU it ran on
    aside = [p for p in tmp_path.iterdir() if p.name.startswith('r.replaced-')]
    assert len(aside) == 1 and (aside[0] / 'checkpoints' / 'best.pt').exists()  # moved aside, not lost

def test_save_weights_from_the_best_validation_or_the_last_update(tmp_path):
    "--weights-from picks the checkpoint written out; the budget says which, and the Set5 PSNR the run measured at its step."
    common = ['train', '--profile', 'smoke', '--out-dir', tmp_path, '--run-name', 'r', '--device', 'cpu', '--steps', '4',
              '--val-set', 'Set5', '--val-every', '2']
    assert run_cli(*common)[0] == 0
    ckpts, rows = tmp_path / 'r' / 'checkpoints', pd.read_csv(tmp_path / 'r' / 'metrics.csv').dropna(subset=['psnr'])
    assert list(rows.step) == [2, 4]
    for which in ('best', 'latest'):                       # the finished run is resumed: no update, only the weights written
        assert run_cli(*common, '--save-weights', tmp_path / f'{which}.pt', '--weights-from', which)[0] == 0
        got, want = load_checkpoint(tmp_path / f'{which}.pt'), load_checkpoint(ckpts / f'{which}.pt')
        assert all(torch.equal(got['model'][k], v) for k, v in want['model'].items())
        b = got['budget']
        assert b['weights_from'] == which and b['steps'] == want['step']
        assert b['val_psnr'] == pytest.approx(float(rows.set_index('step').psnr[want['step']]), abs=1e-4)
        assert b['best_psnr'] == pytest.approx(rows.psnr.max(), abs=1e-4)
    assert load_checkpoint(tmp_path / 'latest.pt')['budget']['steps'] == 4

def test_save_weights_records_the_initial_weights(tmp_path):
    "Shipped x3 weights started from an x2 network say which: its file, the updates it had made, its sha256 and scale."
    from ikm_nb.download import sha256_file
    from ikm_nb.checkpoint import budget_summary
    common = ['--profile', 'smoke', '--out-dir', tmp_path, '--device', 'cpu', '--steps', '2']
    assert run_cli('train', *common, '--run-name', 'x2')[0] == 0
    w2 = tmp_path / 'x2' / 'checkpoints' / 'latest.pt'
    assert run_cli('train', *common, '--run-name', 'x3', '--scale', '3', '--init-weights', w2,
                   '--save-weights', tmp_path / 'x3.pt')[0] == 0
    assert load_checkpoint(tmp_path / 'x3.pt')['budget']['init_weights'] == dict(
        file=str(w2), steps=2, seconds=load_checkpoint(w2)['seconds'], sha256=sha256_file(w2), scale=2, budget=None)
    assert run_cli('train', *common, '--run-name', 'x2', '--save-weights', tmp_path / 'x2.pt')[0] == 0
    assert run_cli('train', *common, '--run-name', 'x3', '--scale', '3', '--init-weights', w2,
                   '--save-weights', tmp_path / 'x3.pt')[0] == 2          # the file exists: not overwritten without --force
    assert run_cli('train', *common, '--run-name', 'x2', '--steps', '3')[0] == 0   # x2 goes on: its file is not x3's start
    code, err = run_cli('train', *common, '--run-name', 'x3', '--scale', '3', '--init-weights', w2,
                        '--save-weights', tmp_path / 'x3.pt', '--force')
    assert code == 2 and 'has changed since' in err and 'Traceback' not in err
    assert load_checkpoint(tmp_path / 'x3.pt')['budget']['init_weights']['steps'] == 2   # the earlier file is left as it was
    assert load_checkpoint(tmp_path / 'x2.pt')['budget']['init_weights'] is None
    s = budget_summary(load_checkpoint(tmp_path / 'x3.pt')['budget'], scale=3)   # the tables' row: 4 updates, 2 at x2
    assert (s['steps'], s['pretrain_scale'], s['pretrain_steps']) == (4, 2, 2)

def test_weights_trained_in_a_chain_of_runs_count_from_the_seed(tmp_path):
    """Runs a -> b -> c, each beginning from the weights the one before wrote (how the CPU weights are trained, one run per
    session): c's budget counts the updates and seconds of all three and holds b's budget, which holds a's."""
    common = ['--profile', 'smoke', '--out-dir', tmp_path, '--device', 'cpu', '--steps', '2']
    budgets, init = [], []
    for r, steps in zip('abc', (2, 3, 1)):
        w = tmp_path / f'{r}.pt'
        assert run_cli('train', *common, '--run-name', r, '--steps', str(steps), *init,
                       '--save-weights', w, '--weights-from', 'latest')[0] == 0
        budgets.append(load_checkpoint(w)['budget']); init = ['--init-weights', w]
    a, b, c = budgets
    assert [x['steps'] for x in budgets] == [2, 3, 1] and [x['total_steps'] for x in budgets] == [2, 5, 6]
    assert c['total_seconds'] == pytest.approx(a['seconds'] + b['seconds'] + c['seconds'], abs=0.11)
    assert c['init_weights']['budget'] == b and c['init_weights']['budget']['init_weights']['budget'] == a
    assert c['init_weights']['steps'] == 5 and a['init_weights'] is None
    assert 'from ' + str(tmp_path / 'b.pt') + ' (after 5 updates' in (tmp_path / 'c' / 'train.log').read_text()

def test_the_budget_gives_the_threads_the_parts_trained_with(tmp_path):
    "A run trained in parts on 1 and then 2 CPU threads: its weights, written from a 3-thread process, say '1/2 threads'."
    n = torch.get_num_threads()
    cfg = profile_config('smoke', steps=2, out_dir=str(tmp_path), run_name='r', device='cpu')
    try:
        torch.set_num_threads(1); train(cfg, progress=False, stop_after=1)
        torch.set_num_threads(2); train(cfg, progress=False)
        torch.set_num_threads(3)
        assert run_cli('train', '--profile', 'smoke', '--out-dir', tmp_path, '--run-name', 'r', '--device', 'cpu', '--steps', '2',
                       '--save-weights', tmp_path / 'w.pt')[0] == 0
    finally: torch.set_num_threads(n)
    assert load_checkpoint(tmp_path / 'w.pt')['budget']['device'].endswith(', 1/2 threads)')
    assert '(1 threads)' in (tmp_path / 'r' / 'train.log').read_text()

def test_resume_refuses_another_validation(tmp_path):
    cfg = profile_config('smoke', steps=4, out_dir=str(tmp_path), run_name='r', device='cpu')
    train(cfg, progress=False, stop_after=2)
    for change in (dict(val_set='Set14', val_every=2), dict(convention='paper')):
        with pytest.raises(CheckpointError, match=f"{next(iter(change))}="):
            train(profile_config('smoke', steps=4, out_dir=str(tmp_path), run_name='r', device='cpu', **change), progress=False)

# ---------------------------------------------------------------- checkpoints
def test_bad_checkpoints_get_clear_errors(tmp_path, tiny_weights):
    empty = tmp_path / 'empty.pt'; empty.write_bytes(b'')
    with pytest.raises(CheckpointError, match=r'is empty \(0 bytes\)'): load_checkpoint(empty)
    st = load_checkpoint(tiny_weights)
    nan = {**st, 'model': {k: (v.clone().fill_(float('nan')) if v.is_floating_point() else v) for k, v in st['model'].items()}}
    with pytest.raises(CheckpointError, match='non-finite weights'): model_from_checkpoint(nan)
    huge = {**st, 'model_config': {**st['model_config'], 'channels': 100_000}}
    with pytest.raises(CheckpointError, match='channels must be a positive integer of at most 1024, got 100000'):
        model_from_checkpoint(huge)
    wide = {**st, 'model_config': {**st['model_config'], 'channels': 1024, 'growth': 1024, 'n_blocks': 60}}
    with pytest.raises(CheckpointError, match='parameters'): model_from_checkpoint(wide)   # each number in bounds, the whole not

# ---------------------------------------------------------------- tiles, outputs, devices
def test_tile_and_overlap_are_checked(tiny_weights, tmp_path):
    m = model_from_checkpoint(tiny_weights)
    img = load_image(SRC)
    for tile, overlap in ((0, 16), (-8, 16), (4, 16), (64, -4)):
        with pytest.raises(ValueError, match='tile=|overlap='): upscale(m, img, tile, overlap)
        code, err = run_cli('upscale', SRC, tmp_path / 'o.png', '--weights', tiny_weights, '--tile', tile, '--overlap', overlap)
        assert code == 2 and 'Traceback' not in err and not (tmp_path / 'o.png').exists()

def test_upscale_outputs(tiny_weights, tmp_path, monkeypatch):
    code, err = run_cli('upscale', SRC, tmp_path, '--weights', tiny_weights)
    assert code == 2 and 'is a folder' in err
    out = tmp_path / 'o.png'
    import ikm_nb.evaluate as E
    orig = E.upscale
    def slow(*a, **k):                                           # another run writes the output while the model runs
        out.write_bytes(b'the other run'); return orig(*a, **k)
    monkeypatch.setattr(E, 'upscale', slow)
    code, err = run_cli('upscale', SRC, out, '--weights', tiny_weights)
    assert code == 2 and 'appeared while this image was being made' in err and out.read_bytes() == b'the other run'
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('.o.png.')]   # no temporary file left
    assert run_cli('upscale', SRC, out, '--weights', tiny_weights, '--force')[0] == 0 and load_image(out).shape[1] == 2 * 288

@pytest.mark.skipif(torch.cuda.is_available(), reason='needs a machine without CUDA')
def test_cuda_without_cuda(tiny_weights, tmp_path):
    code, err = run_cli('upscale', SRC, tmp_path / 'o.png', '--weights', tiny_weights, '--device', 'cuda')
    assert code == 2 and 'sees no CUDA GPU' in err

def test_truncated_jpeg_headers_are_read_errors(tmp_path):
    b = io.BytesIO(); Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(b, 'JPEG')
    data, p = b.getvalue(), tmp_path / 't.jpg'
    for n in range(1, len(data), 7):
        p.write_bytes(data[:n])
        with pytest.raises(ImageReadError, match='t.jpg'): load_image(p)

# ---------------------------------------------------------------- evaluation
def test_eval_checks_everything_before_working(tiny_weights, tmp_path, monkeypatch):
    import ikm_nb.evaluate as E
    calls = []
    monkeypatch.setattr(E, 'upscale', lambda *a, **k: calls.append(1))
    m = model_from_checkpoint(tiny_weights)
    with pytest.raises(DataNotFoundError, match="'NoSuchSet' not found"): evaluate(m, ['Set5', 'Set14', 'NoSuchSet'], progress=False)
    small = tmp_path / 'small'; small.mkdir()
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(small / 'dot.png')
    with pytest.raises(DataNotFoundError, match=r'dot.png of .* is 1x1: evaluating at x2 needs at least 15x15'):
        evaluate(m, ['Set5', str(small)], progress=False)
    assert calls == []                                            # no work was done, so none was thrown away

def test_eval_out_is_not_overwritten_silently(tiny_weights, tmp_path):
    out = tmp_path / 'per_image.csv'; out.write_text('mine')
    code, err = run_cli('eval', '--weights', tiny_weights, '--sets', 'Set5', '--out', out)
    assert code == 2 and 'pass --force' in err and out.read_text() == 'mine'
    assert run_cli('eval', '--weights', tiny_weights, '--sets', 'Set5', '--out', out, '--force')[0] == 0
    assert out.read_text().startswith('set,image')

def test_training_blow_up_is_a_message(tmp_path):
    code, err = run_cli('train', '--profile', 'smoke', '--steps', '12', '--optimizer', 'sgd', '--lr', '1e30', '--ckpt-every', '2',
                        '--out-dir', tmp_path, '--run-name', 'nan', '--device', 'cpu')
    assert code == 3 and 'training stopped' in err and 'lower the learning rate' in err and 'Traceback' not in err

def test_a_fresh_run_begins_its_own_log(tmp_path):
    "A committed run folder holds config.json, metrics.csv and train.log but no checkpoint: its rerun starts at step 0 and its files are its own."
    d = tmp_path / 'r'; d.mkdir()
    (d / 'train.log').write_text('an earlier run of this name\n'); (d / 'metrics.csv').write_text('step,loss\n999,1.0\n')
    train(profile_config('smoke', steps=2, out_dir=str(tmp_path), run_name='r', device='cpu'), progress=False)
    assert 'earlier run' not in (d / 'train.log').read_text() and '999' not in (d / 'metrics.csv').read_text()
    train(profile_config('smoke', steps=3, out_dir=str(tmp_path), run_name='r', device='cpu'), progress=False)   # resumed: appended
    assert 'resumed at step 2' in (d / 'train.log').read_text() and 'started' in (d / 'train.log').read_text()

# ---------------------------------------------------------------- memory
def test_an_upscale_that_would_not_fit_is_tiled_exactly(tiny_weights, monkeypatch):
    "Not enough memory for the whole image: exact tiles, with a warning, and the whole image's output (up to rounding)."
    import ikm_nb.evaluate as E
    m = model_from_checkpoint(tiny_weights)
    img = load_image(SRC)
    whole = upscale(m, img)
    need = E.inference_bytes(m, img.shape[1], img.shape[2])
    monkeypatch.setattr(E, 'available_bytes', lambda dev: need // 3)
    tiles = []
    monkeypatch.setattr(E, '_tile_windows', lambda *a, f=E._tile_windows: tiles.append(a) or f(*a))
    with pytest.warns(UserWarning, match='exact tiles of'): tiled = upscale(m, img)
    h, w = img.shape[1:]
    tile, overlap = tiles[0][2:]
    assert tile < min(h, w) - 2 * overlap and overlap == E.receptive_radius(m)     # tiles smaller than the image, full context
    assert E.inference_bytes(m, tile + 2 * overlap, tile + 2 * overlap) <= need // 3
    diff = (tiled.int() - whole.int()).abs()
    assert diff.max() <= 1 and (diff > 0).float().mean() < 1e-3                      # float rounding at the quantisation step
    plain = upscale(m, img, tile=tile, overlap=overlap)                                # the same tiles without the whole image's statistics
    assert (plain.int() - whole.int()).abs().sum() > 10 * diff.sum()

def test_an_upscale_that_would_not_fit_even_in_tiles_is_refused_before_work(tiny_weights, monkeypatch):
    import ikm_nb.evaluate as E
    m = model_from_checkpoint(tiny_weights)
    img = load_image(SRC)
    monkeypatch.setattr(E, 'available_bytes', lambda dev: 10**6)
    calls = []
    monkeypatch.setattr(E, '_sr', lambda *a: calls.append(1))
    with pytest.raises(MemoryError, match=r'even exact tiles of 8 LR pixels .* use a device with more memory'): upscale(m, img)
    with pytest.raises(MemoryError, match=r'in tiles of 64 needs about .* GiB'): upscale(m, img, tile=64)
    assert calls == []

def test_exact_tiles_from_the_command_line(tiny_weights, tmp_path):
    "`ikm upscale --tile N --exact-tiles` writes the whole image's output; plain `--tile N` does not."
    outs = {}
    for name, extra in [('whole', []), ('exact', ['--tile', 64, '--exact-tiles']), ('plain', ['--tile', 64])]:
        code, err = run_cli('upscale', SRC, tmp_path / f'{name}.png', '--weights', tiny_weights, *extra)
        assert code == 0, err
        outs[name] = load_image(tmp_path / f'{name}.png').int()
    assert (outs['exact'] - outs['whole']).abs().max() <= 1
    assert (outs['plain'] - outs['whole']).abs().sum() > 10 * (outs['exact'] - outs['whole']).abs().sum()

@pytest.mark.parametrize('scale', [2, 4])
def test_the_memory_estimate_bounds_the_measured_peak(scale):
    """The shipped U-HDN+IKM's measured peak (max RSS growth of a fresh process) never exceeds `inference_bytes`: the estimate
    refuses what would not fit. (The ratio was 0.62 at x2 and x4 alone, 0.0-0.13 under the test suite's load, where the allocator
    reuses memory freed earlier: only the upper bound is asserted.)"""
    import subprocess
    code = (f"import resource, torch; torch.set_num_threads(1)\n"
            f"from ikm_nb.checkpoint import model_from_checkpoint, shipped_weights\n"
            f"from ikm_nb.evaluate import upscale, inference_bytes\n"
            f"m = model_from_checkpoint(shipped_weights({scale})); img = (torch.rand(3, 256, 256) * 255).to(torch.uint8)\n"
            f"upscale(m, img[:, :24, :24]); base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            f"upscale(m, img); peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) * 1024\n"
            f"print(peak / inference_bytes(m, 256, 256))")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert 0 <= float(r.stdout.strip()) <= 1.0, r.stdout

# ---------------------------------------------------------------- issue 28: options' ranges, devices, folders, JSON
@pytest.mark.parametrize('flag', [['--log-every', '0'], ['--lr-step', '0'], ['--device', 'mps'], ['--device', 'meta']])
def test_bad_training_options_are_refused_before_any_work(tmp_path, flag):
    code, err = run_cli('train', '--profile', 'smoke', '--out-dir', tmp_path, '--run-name', 'r', *flag)
    assert code == 2 and 'Traceback' not in err and ('must be at least 1' in err or "runs on 'cpu' or 'cuda'" in err), err
    assert not (tmp_path / 'r').exists()

def test_weights_that_name_a_folder_say_so(tmp_path):
    code, err = run_cli('eval', '--weights', tmp_path, '--sets', 'Set5')
    assert code == 2 and 'is a folder, not a checkpoint file' in err and 'does not exist' not in err

def test_a_finished_training_prints_valid_json(tmp_path, capsys):
    args = ('train', '--profile', 'smoke', '--steps', '2', '--out-dir', tmp_path, '--run-name', 'r', '--device', 'cpu')
    assert run_cli(*args)[0] == 0
    capsys.readouterr()
    assert run_cli(*args)[0] == 0                                   # asked again: nothing to train
    import json
    out = capsys.readouterr().out
    res = json.loads(out[out.index('{'):out.rindex('}') + 1])       # strict JSON: no NaN
    assert res['step'] == 2 and res['loss'] is None

def test_a_pickle_is_refused_without_torchs_advice_to_unpickle_it(tmp_path):
    import pickle
    p = tmp_path / 'evil.pt'
    torch.save({'model': {}, 'model_config': {}, 'x': np.int64(3).__class__}, p)   # a class: refused by a safe load
    with pytest.raises(CheckpointError) as e: load_checkpoint(p)
    assert 'weights_only' not in str(e.value) and 'safe load refuses' in str(e.value)

def test_save_weights_is_checked_before_training(tmp_path):
    "An existing --save-weights file is not overwritten without --force, and a folder is refused, before any update."
    keep = tmp_path / 'mine.pt'; keep.write_bytes(b'precious')
    base = ('train', '--profile', 'smoke', '--steps', '2', '--out-dir', tmp_path / 'runs', '--run-name', 'r', '--device', 'cpu')
    code, err = run_cli(*base, '--save-weights', keep)
    assert code == 2 and 'pass --force' in err and keep.read_bytes() == b'precious' and not (tmp_path / 'runs' / 'r').exists()
    code, err = run_cli(*base, '--save-weights', tmp_path)
    assert code == 2 and 'is a folder' in err and not (tmp_path / 'runs' / 'r').exists()
    assert run_cli(*base, '--save-weights', keep, '--force')[0] == 0 and keep.read_bytes() != b'precious'

def test_a_missing_validation_set_stops_the_run_before_its_first_update(tmp_path):
    cfg = profile_config('smoke', steps=4, val_set='Urban100_absent', val_every=2, out_dir=str(tmp_path), run_name='r',
                         device='cpu')
    with pytest.raises(DataNotFoundError): train(cfg, progress=False)
    assert not (tmp_path / 'r' / 'checkpoints' / 'latest.pt').exists()

def test_save_images_never_replaces_a_users_images_without_force(tmp_path, tiny_weights):
    d = tmp_path / 'imgs'; (d / 'Set5' / 'x2').mkdir(parents=True)
    mine = d / 'Set5' / 'x2' / 'bird.png'; mine.write_bytes(b'mine')
    code, err = run_cli('eval', '--weights', tiny_weights, '--sets', 'Set5', '--save-images', d)
    assert code == 2 and 'exist already' in err and mine.read_bytes() == b'mine'
    f = tmp_path / 'afile'; f.write_text('x')
    code, err = run_cli('eval', '--weights', tiny_weights, '--sets', 'Set5', '--save-images', f)
    assert code == 2 and 'is a file' in err and 'Traceback' not in err

def test_an_unwritable_output_folder_is_refused_before_the_work(tmp_path, tiny_weights, monkeypatch):
    "A folder this user cannot write (simulated: the tests may run as root, who writes anywhere) is refused before upscaling."
    ro = tmp_path / 'ro'; ro.mkdir()
    real = os.access
    monkeypatch.setattr(os, 'access', lambda p, mode, *a, **k: False if Path(p) == ro else real(p, mode, *a, **k))
    import ikm_nb.evaluate as ev
    monkeypatch.setattr(ev, 'upscale', lambda *a, **k: pytest.fail('upscaled before checking the output folder'))
    code, err = run_cli('upscale', SRC, ro / 'out.png', '--weights', tiny_weights)
    assert code == 2 and 'cannot be written' in err and 'Traceback' not in err

@pytest.mark.parametrize('field, value', [('dilation', 10**6), ('t', float('nan')), ('channels', 10**5),
                                          ('rgb_std', [0.2, float('inf'), 0.2]), ('depths', [6, 5, 4, 4, 5, 10**6])])
def test_a_checkpoint_config_out_of_range_is_refused(tmp_path, tiny_weights, field, value):
    "Every stored field is checked (type, range, finiteness) when a checkpoint is loaded: none silently degrades the output."
    st = load_checkpoint(tiny_weights)
    st['model_config'][field] = value
    p = tmp_path / 'bad.pt'; torch.save(st, p)
    with pytest.raises((CheckpointError, ValueError), match=field): model_from_checkpoint(p)

def test_every_uhdnconfig_field_has_a_check():
    from dataclasses import fields
    from ikm_nb.arch import UHDNConfig, _VALIDATED
    assert sorted(f.name for f in fields(UHDNConfig)) == sorted(_VALIDATED)

def test_ctrl_c_prints_a_line_not_a_traceback(tmp_path, tiny_weights, monkeypatch):
    import ikm_nb.evaluate as ev
    def interrupted(*a, **k): raise KeyboardInterrupt
    monkeypatch.setattr(ev, 'upscale', interrupted)
    code, err = run_cli('upscale', SRC, tmp_path / 'out.png', '--weights', tiny_weights)
    assert code == 130 and 'interrupted' in err and 'Traceback' not in err and not (tmp_path / 'out.png').exists()

def test_a_full_disk_is_an_error_message_and_leaves_no_output(tmp_path, tiny_weights, monkeypatch):
    import errno, ikm_nb.data as data
    def full(*a, **k): raise OSError(errno.EFBIG, 'File too large')
    monkeypatch.setattr(data, 'save_image', full)
    code, err = run_cli('upscale', SRC, tmp_path / 'out.png', '--weights', tiny_weights)
    assert code == 2 and 'File too large' in err and 'Traceback' not in err and not (tmp_path / 'out.png').exists()

def test_a_killed_writers_temporary_file_is_removed_by_the_next_write(tmp_path):
    "A SIGKILL mid-write leaves `.<name>.<pid>.<random>.tmp`; the next write of that file removes it (its writer is gone)."
    import subprocess
    from ikm_nb.utils import atomic_write_text
    dead = subprocess.Popen([sys.executable, '-c', 'pass']); dead.wait()
    stale = tmp_path / f'.out.csv.{dead.pid}.x1y2.tmp'; stale.write_text('')
    live = tmp_path / f'.out.csv.{os.getpid()}.z3.tmp'; live.write_text('')      # (a writer that is still running)
    atomic_write_text(tmp_path / 'out.csv', 'a,b\n')
    assert not stale.exists() and live.exists() and (tmp_path / 'out.csv').read_text() == 'a,b\n'

def test_training_images_changed_in_place_are_noticed_on_resume(tmp_path):
    "Same names and sizes, other pixels (uncompressed PNGs of one size): the run is not resumed on them."
    rng = np.random.default_rng(0)
    imgs = tmp_path / 'imgs'; imgs.mkdir()
    for i in range(3): Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(imgs / f'{i}.png', compress_level=0)
    cfg = profile_config('smoke', steps=4, train_set=str(imgs), out_dir=str(tmp_path / 'runs'), run_name='r', device='cpu')
    train(cfg, progress=False, stop_after=2)
    size = (imgs / '1.png').stat().st_size
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(imgs / '1.png', compress_level=0)
    assert (imgs / '1.png').stat().st_size == size
    with pytest.raises(CheckpointError, match='changed in place'): train(cfg, progress=False)

def test_shipping_cpu_weights_never_replaces_other_weights_without_force(tmp_path):
    "`scripts/train_cpu_weights.sh S ship` refuses to replace a shipped file that holds other weights unless FORCE=1."
    import re, shutil, subprocess
    (tmp_path / 'scripts').mkdir(); shutil.copy(ROOT / 'scripts' / 'train_cpu_weights.sh', tmp_path / 'scripts')
    L = re.findall(r'^4 ([a-z]) \d+ ', (ROOT / 'scripts' / 'train_cpu_weights.sh').read_text(), re.M)[-1]   # x4's last stage
    last = tmp_path / 'results' / 'runs_cpu' / f'cpu_uhdn-ikm_x4_{L}'; last.mkdir(parents=True)
    (last / 'weights.pt').write_bytes(b'new'); shipped = tmp_path / 'ikm_nb' / 'weights' / 'uhdn_x4.pt'
    shipped.parent.mkdir(parents=True); shipped.write_bytes(b'old')
    ship = lambda *stage, **env: subprocess.run(['bash', 'scripts/train_cpu_weights.sh', '4', 'ship', *stage], cwd=tmp_path,
                                                text=True, capture_output=True, env={**os.environ, **env})
    r = ship()
    assert r.returncode == 2 and 'FORCE=1' in r.stderr and shipped.read_bytes() == b'old'
    r = ship(FORCE='1')
    assert r.returncode == 0 and shipped.read_bytes() == b'new' and list(shipped.parent.iterdir()) == [shipped]
    assert ship().returncode == 0   # the same weights again: nothing to replace
    r = ship('a', FORCE='1')   # a chain's first stages can be shipped, once finished
    assert r.returncode == 2 and 'cpu_uhdn-ikm_x4_a/weights.pt is missing' in r.stderr and shipped.read_bytes() == b'new'
    (last.parent / 'cpu_uhdn-ikm_x4_a').mkdir(); (last.parent / 'cpu_uhdn-ikm_x4_a' / 'weights.pt').write_bytes(b'first')
    assert ship('a', FORCE='1').returncode == 0 and shipped.read_bytes() == b'first'
    assert ship('z', FORCE='1').returncode == 2 and shipped.read_bytes() == b'first'
    (last / 'weights.pt').unlink()
    r = ship(FORCE='1')
    assert r.returncode == 2 and f'train the stages up to {L} first' in r.stderr and shipped.read_bytes() == b'first'
