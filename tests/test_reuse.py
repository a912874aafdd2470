"""Reusing the library (issue 27): the shipped weights load the obvious way, and a state dict carries the normalisation."""
from pathlib import Path
import pytest, torch
from ikm_nb.arch import uhdn, preset
from ikm_nb.checkpoint import model_from_checkpoint, shipped_weights, save_weights, load_checkpoint
from ikm_nb.data import load_image, DF2K_MEAN, DF2K_STD

ROOT = Path(__file__).resolve().parents[1]

def crop():
    return load_image(ROOT / 'data' / 'benchmarks' / 'Set5' / 'bird.png')[None, :, :40, :40].float() / 255

def test_the_documented_call_is_the_shipped_model():
    a, b = uhdn(scale=2, weights='shipped'), model_from_checkpoint(shipped_weights(2))
    assert a.cfg == b.cfg and a.cfg.rgb_mean == DF2K_MEAN and not a.training
    with torch.no_grad(): assert torch.equal(a(crop()), b(crop()))

def test_a_state_dict_without_the_normalisation_is_refused_not_misloaded():
    sd = torch.load(shipped_weights(2), weights_only=True)['model']
    old = {k: v for k, v in sd.items() if k not in ('rgb_mean', 'rgb_std')}   # as written before the normalisation was part of them
    assert len(old) == len(sd) - 2
    with pytest.raises(RuntimeError, match=r'weights=path'): uhdn(scale=2).load_state_dict(old)

def test_a_new_state_dict_gives_the_same_model_the_obvious_way(tmp_path):
    torch.manual_seed(0)
    trained = preset('uhdn', n_blocks=1, channels=16, growth=4, rgb_mean=DF2K_MEAN, rgb_std=DF2K_STD).build().eval()
    p = tmp_path / 'w.pt'; save_weights(p, trained)
    plain = uhdn(n_blocks=1, channels=16, growth=4).eval()          # built without the normalisation ...
    plain.load_state_dict(torch.load(p, weights_only=True)['model'])  # ... which the state dict brings
    with torch.no_grad():
        assert torch.equal(plain(crop()), trained(crop())) and torch.equal(plain(crop()), model_from_checkpoint(p)(crop()))

def test_weights_and_overrides_must_agree():
    with pytest.raises(ValueError, match=r'channels=64 \(asked: 32\)'): uhdn(scale=2, weights='shipped', channels=32)
    assert uhdn(weights='shipped', scale=3, n_blocks=4).cfg.scale == 3

def test_upscale_tiles_a_network_the_library_did_not_build():
    "Tiling needs the scale: read from model.cfg, else measured; a plain conv net's tiles equal its whole-image output."
    import torch.nn as nn
    from ikm_nb.evaluate import upscale
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 12, 3, padding=1), nn.PixelShuffle(2))
    img = (torch.rand(3, 40, 36) * 255).to(torch.uint8)
    assert torch.equal(upscale(net, img, tile=24), upscale(net, img))
    with pytest.raises(ValueError, match='whole factor'): upscale(nn.Conv2d(3, 3, 3), img, tile=24)

def test_upscale_builds_no_autograd_graph():
    "upscale runs the model without autograd (a graph would hold every activation: several times the memory)."
    import torch.nn as nn
    from ikm_nb.evaluate import upscale
    seen = []
    class Probe(nn.Module):
        def __init__(self): super().__init__(); self.conv = nn.Conv2d(3, 12, 3, padding=1); self.up = nn.PixelShuffle(2)
        def forward(self, x): seen.append(torch.is_grad_enabled()); return self.up(self.conv(x))
    img = (torch.rand(3, 20, 20) * 255).to(torch.uint8)
    upscale(Probe(), img); upscale(Probe(), img, tile=12)
    assert seen and not any(seen)


class _EDSRStyle(torch.nn.Module):
    "A small EDSR-style x2 network written here (not the library's): head, residual blocks, sub-pixel tail."
    def __init__(self, c=16, blocks=2):
        super().__init__()
        nn = torch.nn
        self.head = nn.Conv2d(3, c, 3, padding=1)
        self.body = nn.ModuleList(nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, c, 3, padding=1))
                                  for _ in range(blocks))
        self.tail = nn.Sequential(nn.Conv2d(c, 4 * c, 3, padding=1), nn.PixelShuffle(2), nn.Conv2d(c, 3, 3, padding=1))
    def forward(self, x):
        h = y = self.head(x)
        for b in self.body: y = y + b(y)
        return self.tail(y + h)


def _dynamic():
    return {0: torch.export.Dim('batch', max=32), 2: torch.export.Dim('height', min=4, max=2048),
            3: torch.export.Dim('width', min=4, max=2048)}

@pytest.mark.parametrize('which', ['uhdn', 'converted EDSR-style'])
def test_export_with_dynamic_batch_height_and_width_equals_eager(which):
    "torch.export of U-HDN+IKM and of a converted outside network: any batch and image size, the eager (fast path) output."
    from ikm_nb.ikm import ikm_convert, ikm_layers
    torch.manual_seed(0)
    net = (uhdn(scale=2, n_blocks=1, channels=16, growth=4) if which == 'uhdn' else ikm_convert(_EDSRStyle())).eval()
    assert ikm_layers(net) and all(m.active_impl == 'fast' for m in ikm_layers(net))   # eager runs the fast path
    program = torch.export.export(net, (torch.rand(2, 3, 16, 20),), dynamic_shapes=(_dynamic(),))
    with torch.no_grad():
        for shape in [(2, 3, 16, 20), (1, 3, 9, 13), (3, 3, 30, 17)]:
            x = torch.rand(shape)
            torch.testing.assert_close(program.module()(x), net(x), rtol=1e-5, atol=1e-5)


def test_help_shows_each_arguments_comment():
    "The comment beside each argument in the notebooks reaches help(): an `Arguments:` block in the docstring."
    import importlib, inspect, pydoc
    from ikm_nb.utils import argument_comments
    from ikm_nb.ikm import ikm_convert
    text = pydoc.render_doc(ikm_convert, renderer=pydoc.plaintext)
    assert 'preserve: divide each kernel by the attention of a uniform map' in text and 'return_report:' in text
    n = 0
    for m in ('ikm', 'arch', 'stats', 'evaluate', 'train', 'checkpoint', 'data', 'study', 'reproduce', 'metrics'):
        mod = importlib.import_module(f'ikm_nb.{m}')
        docs = argument_comments(Path(mod.__file__).read_text())
        for name in mod.__all__:
            obj = getattr(mod, name)
            if name in docs and (inspect.isfunction(obj) or inspect.isclass(obj)):
                first = next(k for k in docs[name] if k != 'return')  if any(k != 'return' for k in docs[name]) else None
                assert first is None or f"    {first}: " in obj.__doc__, f"ikm_nb.{m}.{name}"
                n += 1
    assert n >= 60

def test_help_names_every_argument_of_every_public_callable():
    """Every parameter (but self, cls, *args, **kwargs) of each public function and class of each ikm_nb module (`__all__`) is
    named in what help() shows (`inspect.getdoc`): by the comment beside it in the signature (or field), or by the docstring."""
    import importlib, inspect, pkgutil, re
    import ikm_nb
    skip = {'self', 'cls'}
    var = {'args', 'kwargs', 'kw'}   # *args / **kwargs passed on as they are
    missing, n = {}, 0
    for info in pkgutil.iter_modules(ikm_nb.__path__):
        if info.name.startswith('_'): continue
        mod = importlib.import_module(f'ikm_nb.{info.name}')
        for name in getattr(mod, '__all__', []):
            obj = getattr(mod, name)
            if not callable(obj): continue
            try: sig = inspect.signature(obj)
            except (TypeError, ValueError): continue
            n += 1
            doc = inspect.getdoc(obj) or ''
            lack = [p.name for p in sig.parameters.values()
                    if p.name not in skip and not (p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name in var)
                    and not re.search(rf'\b{re.escape(p.name)}\b', doc)]
            if lack: missing[f'{info.name}.{name}'] = lack
    assert n >= 150, n
    assert not missing, f"arguments help() does not name (add a comment beside each in the notebook): {missing}"
