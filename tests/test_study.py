"""The IKM study (ikm_nb.study) and CPU bf16 training: a run trained in segments equals one trained straight, its records are
what the layers compute, and bf16 autocast keeps the IKM attention in float32."""
import json
from pathlib import Path
import pandas as pd
import pytest, torch
from ikm_nb.checkpoint import load_checkpoint, model_from_checkpoint
from ikm_nb.ikm import cag, ikm_options, IKMConv2d
from ikm_nb.train import train
from ikm_nb.study import (study_config, study_run, study_plan, run_finished, AttentionRecorder, attention_summary,
                          attention_bounds, study_growth)

def tiny(backbone, variant, tmp_path, steps=4, seed=0, **kw):
    return study_config(backbone, variant, 8, seed, steps, batch=2, patch=16, out_dir=tmp_path, **kw)

@pytest.mark.parametrize('backbone', ['uhdb', 'rb'])
def test_a_run_in_segments_equals_one_trained_straight(tmp_path, backbone):
    "Evaluating between segments (train, evaluate, resume) changes no weight: the same bits as an uninterrupted run."
    seg = study_run(tiny(backbone, 'ikm', tmp_path / 'seg'), eval_every=2, sets=('Set5',), final_sets=())
    straight = train(tiny(backbone, 'ikm', tmp_path / 'straight'), progress=False)
    a = load_checkpoint(seg / 'checkpoints' / 'latest.pt')['model']
    b = load_checkpoint(Path(straight['run_dir']) / 'checkpoints' / 'latest.pt')['model']
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    ev = pd.read_csv(seg / 'eval.csv')
    assert sorted(ev.step.unique()) == [2, 4] and (ev.groupby('step').image.count() == 5).all()

def test_a_finished_point_is_not_redone(tmp_path):
    cfg = tiny('uhdb', 'none', tmp_path)
    run = study_run(cfg, eval_every=2, sets=('Set5',), final_sets=('Set14',))
    before = (run / 'eval.csv').read_text()
    assert run_finished(cfg)
    study_run(cfg, eval_every=2, sets=('Set5',), final_sets=('Set14',))
    assert (run / 'eval.csv').read_text() == before
    ev = pd.read_csv(run / 'eval.csv')
    assert set(ev[ev.step == 4].set) == {'Set5', 'Set14'} and set(ev[ev.step == 2].set) == {'Set5'}

def test_twins_start_from_the_same_weights(tmp_path):
    "IKM adds no parameter: with one seed, the vanilla network and its IKM twin are built with identical weights."
    from ikm_nb.train import _seeded_model
    for b in ('uhdb', 'rb'):
        m0, *_ = _seeded_model(tiny(b, 'none', tmp_path), torch.device('cpu'), 1)
        m1, *_ = _seeded_model(tiny(b, 'ikm', tmp_path), torch.device('cpu'), 1)
        s0, s1 = m0.state_dict(), m1.state_dict()
        assert list(s0) == list(s1) and all(torch.equal(s0[k], s1[k]) for k in s0)

def test_attention_records_are_the_layers_attentions():
    torch.manual_seed(0)
    conv = IKMConv2d(4, 4, 3, padding=1)
    net = torch.nn.Sequential(conv)
    xs = [torch.randn(1, 4, 10, 12) for _ in range(3)]
    with torch.no_grad(), AttentionRecorder(net) as rec:
        for x in xs: net(x)
    assert len(rec.records) == 3 and 'attention' not in conv.__dict__   # unwrapped after the block
    for (name, a), x in zip(rec.records, xs): assert name == '0' and torch.equal(a, cag(x, 3, 0.0))
    s = attention_summary(rec.records).iloc[0]
    a = torch.cat([r[1] for r in rec.records]).flatten(2).double()
    assert s.images == 3 and s.channels == 4
    assert abs(s.tap_sd - float(a.std(-1).mean())) < 1e-12 and abs(s.image_sd - float(a.std(0).mean())) < 1e-12

def test_attention_bounds_of_eq_11():
    b = attention_bounds(3)
    assert b['uniform'] == 1.5
    e = torch.e   # one-hot: softmax gives e / (e + 8) at the hot bin, 1 / (e + 8) elsewhere, times 9; Eq. 11: 1 + sigmoid(s - 1)
    hot, cold = 9 * e / (e + 8), 9 / (e + 8)
    assert abs(b['one_hot_high'] - (1 + 1 / (1 + torch.exp(torch.tensor(1 - hot, dtype=torch.float64))))) < 1e-12
    assert abs(b['one_hot_low'] - (1 + 1 / (1 + torch.exp(torch.tensor(1 - cold, dtype=torch.float64))))) < 1e-12

def test_study_plan_pairs_twins_seed_by_seed():
    plan = study_plan(('uhdb', 'rb'), 16, range(2), 4000)
    assert [c.run_name for c in plan[:4]] == ['claim_uhdb_none_C16_s0_4000-steps', 'claim_uhdb_ikm_C16_s0_4000-steps',
                                              'claim_rb_none_C16_s0_4000-steps', 'claim_rb_ikm_C16_s0_4000-steps']
    u = plan[1]
    assert (u.channels, u.growth, u.ikm, u.lr_step, u.batch, u.patch, u.val_set) == (16, study_growth(16), True, 1000, 16, 48, None)
    assert study_growth(64) == 12 and plan[2].growth is None and plan[2].block == 'rb'

def test_cpu_bf16_training_keeps_the_attention_in_float32(tmp_path):
    "amp='bf16' trains on the CPU under autocast; the CAG of bf16 features is float32 unless attention_dtype='input'."
    x = torch.randn(2, 4, 9, 9).to(torch.bfloat16)
    assert cag(x, 3).dtype == torch.float32
    ikm_options.attention_dtype = 'input'
    try: assert cag(x, 3).dtype == torch.bfloat16
    finally: ikm_options.attention_dtype = 'float32'
    with pytest.raises(ValueError, match='attention_dtype'): ikm_options.attention_dtype = 'half'
    r = train(tiny('uhdb', 'ikm', tmp_path, amp='bf16'), progress=False)
    cfg = json.loads((Path(r['run_dir']) / 'config.json').read_text())
    assert cfg['train']['amp'] == 'bf16' and r['run_dir'].endswith('_bf16') and r['step'] == 4
    fp32 = train(tiny('uhdb', 'ikm', tmp_path), progress=False)
    a = load_checkpoint(Path(r['run_dir']) / 'checkpoints' / 'latest.pt')['model']
    b = load_checkpoint(Path(fp32['run_dir']) / 'checkpoints' / 'latest.pt')['model']
    assert any(not torch.equal(a[k], b[k]) for k in a)   # bf16 did run: other rounding, other weights
