"""The `ikm` command on real images, and its answers to bad input."""
import os, subprocess, sys
from pathlib import Path
import pytest, torch
from PIL import Image
from ikm_nb.checkpoint import save_weights, shipped_weights, load_checkpoint
from ikm_nb.arch import preset
from ikm_nb.data import load_image

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, 'OMP_NUM_THREADS': '1'}

def ikm(*args, check=False):
    r = subprocess.run([sys.executable, '-m', 'ikm_nb.cli', *map(str, args)], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    if check: assert r.returncode == 0, r.stderr[-3000:]
    return r

@pytest.fixture(scope='module')
def tiny_weights(tmp_path_factory):
    d = tmp_path_factory.mktemp('w')
    torch.manual_seed(0)
    m = preset('uhdn', n_blocks=1, channels=16, growth=4, scale=2).build()
    save_weights(d / 'x2.pt', m); return d / 'x2.pt'

def test_upscale_real_image_and_refusals(tmp_path, tiny_weights):
    src = ROOT / 'data/benchmarks/Set14/bridge.png'       # grayscale: comes back grayscale
    out = tmp_path / 'bridge_x2.png'
    ikm('upscale', src, out, '--scale', 2, '--weights', tiny_weights, check=True)
    img, sr = load_image(src), load_image(out)
    assert sr.shape == (img.shape[0], img.shape[1] * 2, img.shape[2] * 2)
    before = out.read_bytes()
    r = ikm('upscale', src, out, '--scale', 2, '--weights', tiny_weights)
    assert r.returncode == 2 and 'exists: pass --force' in r.stderr and out.read_bytes() == before
    assert ikm('upscale', src, out, '--scale', 2, '--weights', tiny_weights, '--force').returncode == 0
    r = ikm('upscale', src, tmp_path / 'o3.png', '--scale', 3, '--weights', tiny_weights)
    assert r.returncode == 2 and 'holds weights for x2, not x3' in r.stderr and not (tmp_path / 'o3.png').exists()
    bad = tmp_path / 'broken.png'; bad.write_bytes(b'\x89PNG\r\n\x1a\n' + b'\0' * 40)
    r = ikm('upscale', bad, tmp_path / 'o.png', '--weights', tiny_weights)
    assert r.returncode == 2 and 'broken.png' in r.stderr and 'Traceback' not in r.stderr
    trunc = tmp_path / 'trunc.pt'; trunc.write_bytes(tiny_weights.read_bytes()[:1000])
    r = ikm('upscale', src, tmp_path / 'o.png', '--weights', trunc)
    assert r.returncode == 2 and 'not a readable checkpoint' in r.stderr
    r = ikm('upscale', src, tmp_path / 'o.png', '--weights', tmp_path / 'nope.pt')
    assert r.returncode == 2 and 'does not exist' in r.stderr

def test_upscale_tiled_matches_shape_and_rgb(tmp_path, tiny_weights):
    src = ROOT / 'data/benchmarks/Set5/butterfly.png'
    ikm('upscale', src, tmp_path / 'a.png', '--weights', tiny_weights, check=True)
    ikm('upscale', src, tmp_path / 'b.png', '--weights', tiny_weights, '--tile', 40, '--overlap', 8, check=True)
    a, b = load_image(tmp_path / 'a.png'), load_image(tmp_path / 'b.png')
    assert a.shape == b.shape == (3, 512, 512)
    assert (a.float() - b.float()).abs().mean() > 0          # IKM's attention is global: tiles change the result

def test_eval_on_set5_prints_and_writes(tmp_path, tiny_weights):
    r = ikm('eval', '--weights', tiny_weights, '--sets', 'Set5', '--out', tmp_path / 'e.csv', check=True)
    assert 'Set5' in r.stdout
    import pandas as pd
    df = pd.read_csv(tmp_path / 'e.csv')
    assert len(df) == 5 and set(df.image) == {'baby', 'bird', 'butterfly', 'head', 'woman'}
    r = ikm('eval', '--weights', tiny_weights, '--sets', 'NoSuchSet')
    assert r.returncode == 2 and "benchmark set 'NoSuchSet' not found" in r.stderr

def test_shipped_weights_upscale_out_of_the_box(tmp_path):
    "The package ships x2, x3 and x4 weights, and `ikm upscale` uses them by default; on Set5 they beat bicubic clearly."
    from ikm_nb.checkpoint import model_from_checkpoint
    from ikm_nb.evaluate import evaluate
    from ikm_nb.resize import imresize, modcrop
    from ikm_nb.metrics import psnr
    for s in (2, 3, 4):
        st = load_checkpoint(shipped_weights(s))
        assert st['model_config']['scale'] == s and st['budget']['steps'] > 0
    src = ROOT / 'data/benchmarks/Set5/bird.png'
    ikm('upscale', src, tmp_path / 'bird_x4.png', '--scale', 4, check=True)
    assert load_image(tmp_path / 'bird_x4.png').shape == (3, 288 * 4, 288 * 4)
    m = model_from_checkpoint(shipped_weights(2))
    hr = modcrop(load_image(src), 2); lr = imresize(hr, 0.5)
    from ikm_nb.evaluate import upscale
    assert psnr(upscale(m, lr), hr, 2) > psnr(imresize(lr, 2), hr, 2) + 1.0

def test_complexity_command():
    r = ikm('complexity', check=True)
    assert '1390915' in r.stdout.replace(',', '') and '10903427' in r.stdout.replace(',', '')

def test_export_onnx_runs_like_the_model_and_refuses_bad_output(tmp_path, tiny_weights):
    import numpy as np, onnxruntime
    from ikm_nb.checkpoint import model_from_checkpoint
    out = tmp_path / 'tiny.onnx'
    r = ikm('export', out, '--weights', tiny_weights, check=True)
    assert 'dynamic batch, height and width' in r.stdout
    s = onnxruntime.InferenceSession(str(out), providers=['CPUExecutionProvider'])
    lr = load_image(ROOT / 'data/benchmarks/Set5/baby.png')[None, :, :60, :70].float() / 255   # a real image's crop, a new size
    model = model_from_checkpoint(tiny_weights)
    with torch.no_grad(): want = model(lr).numpy()
    got = s.run(None, {s.get_inputs()[0].name: lr.numpy()})[0]
    assert got.shape == want.shape == (1, 3, 120, 140) and np.abs(got - want).max() < 1e-4
    r = ikm('export', out, '--weights', tiny_weights, '--batch', '1', '--force', check=True)   # the fixed-batch form
    assert 'batch 1, dynamic height and width' in r.stdout
    s = onnxruntime.InferenceSession(str(out), providers=['CPUExecutionProvider'])
    assert np.abs(s.run(None, {s.get_inputs()[0].name: lr.numpy()})[0] - want).max() < 1e-4
    before = out.read_bytes()
    r = ikm('export', out, '--weights', tiny_weights)
    assert r.returncode == 2 and 'exists: pass --force' in r.stderr and out.read_bytes() == before
    r = ikm('export', tmp_path / 'tiny.tflite', '--weights', tiny_weights)
    assert r.returncode == 2 and '.onnx' in r.stderr and not (tmp_path / 'tiny.tflite').exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ['tiny.onnx']   # no temporary file left

def test_train_help_explains_every_setting():
    "`ikm train --help` gives each TrainConfig field's comment as its flag's help, the same text `help(TrainConfig)` shows."
    import argparse, dataclasses
    from ikm_nb.cli import parser
    from ikm_nb.train import TrainConfig
    sub = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    flags = {a.dest: a.help for a in sub.choices['train']._actions}
    doc = TrainConfig.__doc__
    for f in dataclasses.fields(TrainConfig):
        assert flags[f.name], f"--{f.name.replace('_', '-')} has no help"
        assert f"{f.name}: {flags[f.name]}" in doc, f.name
    assert flags['lr_gamma'] == '(see lr_step): 0.5 halves it'
