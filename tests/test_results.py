"""The committed results of the cpu profile say what the README claims of them."""
import json
from pathlib import Path
import pandas as pd
import pytest

R = Path(__file__).resolve().parents[1] / 'results'

def test_cpu_profile_model_learned():
    "Set5 x2: the U-HDN+IKM trained by the cpu profile beats bicubic by at least 1 dB (issue: 'a model that really learned')."
    ours = pd.read_csv(R / 'tables' / 'table1_uhdn_cpu.csv')
    bic = pd.read_csv(R / 'tables' / 'table1_bicubic.csv')
    mine = ours[ours.source.str.startswith('ours: trained') & (ours.set == 'Set5') & (ours.scale == 2)].psnr.item()
    base = bic[(bic.set == 'Set5') & (bic.scale == 2) & (bic.convention == 'paper')].psnr.item()
    assert mine - base >= 1.0
    assert set(ours.scale) == {2, 3, 4}                       # the shipped weights were evaluated at every scale
    runs = list((R / 'runs').glob('uhdn-*/metrics.csv'))             # table1_uhdn's run (fig10_iso's runs are fig10_*)
    assert runs and all(pd.read_csv(p).step.max() == 800 for p in runs)


ABLATION = dict(steps=200, batch=8, patch=32, seeds=[0, 1, 2], set='Set14')   # the cpu profile of fig09, fig10, fig11, table5

def ablation_run(net='uhdn', t='0.0', mode='iso', seed=0, batch=8):
    "The run folder of one cpu ablation run, as `uhdn_run_name` names it (written out here: a test of the naming, too)."
    a = ABLATION
    return R / 'runs' / f"uhdn_cpu_x2_{net}_t{t}_{mode}_s{seed}_b{batch}p{a['patch']}_{a['steps']}-steps"

def check_ablation(t, arm, arms, by_batch=False):
    "Every arm x seed (x batch) once, evaluated on the profile's set after the full budget its own run log records."
    a = ABLATION
    assert (t.steps == a['steps']).all() and (t.set == a['set']).all() and t.psnr.between(20, 40).all()
    keys = [arm, 'seed'] + (['batch'] if by_batch else [])
    assert not t.duplicated(keys).any()
    assert t.groupby([arm] + (['batch'] if by_batch else [])).seed.apply(lambda s: sorted(s) == a['seeds']).all()
    assert sorted(t[arm].astype(str).unique()) == sorted(arms)


def test_fig09_cpu_thresholds_with_three_seeds():
    "fig09_threshold's cpu table: t = 0, 'mean', 'median' x 3 seeds, each after its full budget; the times of f_PIA measured."
    t = pd.read_csv(R / 'tables' / 'fig09_threshold_cpu.csv', dtype={'t': str})
    check_ablation(t, 't', ['0.0', 'mean', 'median'])
    assert (t.pia_ms > 0).all() and (t.batch == 8).all()
    for r in t.itertuples():
        assert pd.read_csv(ablation_run(t=r.t, seed=r.seed) / 'metrics.csv').step.max() == ABLATION['steps']


def test_fig10_cpu_modes_and_batches_with_three_seeds():
    "fig10_iso's cpu table: IsO and GO at batches 2 and 8 x 3 seeds, each after the full budget its run log records."
    t = pd.read_csv(R / 'tables' / 'fig10_iso_cpu.csv')
    check_ablation(t, 'mode', ['go', 'iso'], by_batch=True)
    assert sorted(t.batch.unique()) == [2, 8]
    for r in t.itertuples():
        log = pd.read_csv(ablation_run(mode=r.mode, seed=r.seed, batch=r.batch) / 'metrics.csv')
        assert log.step.max() == ABLATION['steps']


def test_table5_cpu_structures_with_three_seeds():
    """table5_uhdn_ablation's cpu table: the four structures (U-style residual x hourglass) x 3 seeds, evaluated on Set5 and
    Set14, with the full-size complexity that the paper prints for the hourglass rows."""
    t = pd.read_csv(R / 'tables' / 'table5_uhdn_ablation_cpu.csv')
    hourglass, equal = '[6, 5, 4, 4, 5, 6]', '[5, 5, 5, 5, 5, 5]'
    assert dict(zip(t.structure, zip(t.u_residual, t.depths))) == {
        'dense': (False, equal), 'u': (True, equal), 'hourglass': (False, hourglass), 'uhdn': (True, hourglass)}
    assert set(t.set) == {'Set5', 'Set14'} and (t.steps == ABLATION['steps']).all() and t.psnr.between(20, 42).all()
    assert t.groupby(['structure', 'set']).seed.apply(lambda s: sorted(s) == ABLATION['seeds']).all()
    assert (t[t.depths == hourglass].params_full == 1_390_915).all() and (t[t.depths == equal].params_full == 1_380_547).all()
    for p in set(t.structure):
        for s in ABLATION['seeds']:
            net = 'uhdn' if p == 'uhdn' else f'table5_{p}'   # the U-HDN row is U-HDN+IKM itself: its runs are shared
            run = ablation_run(net=net, seed=s)
            assert pd.read_csv(run / 'metrics.csv').step.max() == ABLATION['steps']
            cfg = json.loads((run / 'config.json').read_text())['model']   # trained with the fields the table names
            assert (cfg['u_residual'], str(cfg['depths'])) == tuple(t[t.structure == p][['u_residual', 'depths']].iloc[0])


def test_fig11_cpu_variants_with_three_seeds():
    "fig11_hourglass's cpu table: U-HDN and V1-V3 (depths as built) x 3 seeds, each after its full budget."
    t = pd.read_csv(R / 'tables' / 'fig11_hourglass_cpu.csv')
    check_ablation(t, 'variant', ['U-HDN', 'U-HDN_V1', 'U-HDN_V2', 'U-HDN_V3'])
    assert list(t.drop_duplicates('variant').depths) == ['[6, 5, 4, 4, 5, 6]', '[4, 5, 6, 6, 5, 4]', '[2, 3, 4, 5, 6, 7]',
                                                         '[7, 6, 5, 4, 3, 2]']   # as written (the field)
    assert list(t.drop_duplicates('variant').unit_depths) == ['[6, 5, 4, 4, 5, 6]', '[4, 5, 6, 6, 5, 4]', '[4, 4, 4, 5, 6, 7]',
                                                              '[7, 6, 5, 4, 4, 4]']   # as built (clamped to [4, 16])
    assert list(t.drop_duplicates('variant').params_full) == [1_390_915, 1_390_915, 1_401_283, 1_401_283]


def test_ablations_share_the_u_hdn_runs():
    """The U-HDN with t = 0 and IsO at batch 8 is one set of runs shared by fig09, fig10, fig11 and table5: the four tables
    report the same Set14 PSNR for it, seed by seed (a shared run evaluated the same way gives the same number)."""
    f9 = pd.read_csv(R / 'tables' / 'fig09_threshold_cpu.csv', dtype={'t': str})
    f10 = pd.read_csv(R / 'tables' / 'fig10_iso_cpu.csv')
    f11 = pd.read_csv(R / 'tables' / 'fig11_hourglass_cpu.csv')
    t5 = pd.read_csv(R / 'tables' / 'table5_uhdn_ablation_cpu.csv')
    got = [f9[f9.t == '0.0'], f10[(f10['mode'] == 'iso') & (f10.batch == 8)], f11[f11.variant == 'U-HDN'],
           t5[(t5.structure == 'uhdn') & (t5.set == 'Set14')]]
    got = [g.sort_values('seed').psnr.tolist() for g in got]
    assert len(got[0]) == 3 and all(g == got[0] for g in got)


def test_fig08_cpu_grid_with_three_seeds():
    "fig08_model_size's cpu table: N in {1, 2} x M in {4, 6} x C in {16, 32} x 3 seeds; parameters grow with each of N, M, C."
    t = pd.read_csv(R / 'tables' / 'fig08_model_size_cpu.csv')
    assert len(t) == 24 and sorted(set(t.seed)) == [0, 1, 2] and (t.set == "Set14").all() and (t.steps == 150).all()
    assert t.psnr.between(20, 40).all()
    assert set(zip(t.n_blocks, t.n_units, t.channels)) == {(n, m, c) for n in (1, 2) for m in (4, 6) for c in (16, 32)}
    p = t.drop_duplicates('label').set_index(['n_blocks', 'n_units', 'channels']).params
    assert all(p[(2, m, c)] > p[(1, m, c)] and p[(n, 6, c)] > p[(n, 4, c)] and p[(n, m, 32)] > p[(n, m, 16)]
               for n in (1, 2) for m in (4, 6) for c in (16, 32))
    for r in t.itertuples():
        name = f"fig08_cpu_x2_N{r.n_blocks}M{r.n_units}C{r.channels}_s{r.seed}_b8p32_150-steps"
        assert pd.read_csv(R / 'runs' / name / 'metrics.csv').step.max() == 150


def shipped_budget(scale):
    "The budget of the weights shipped now for `scale`, as the tables state it (its chain's updates from the seed)."
    import torch
    from ikm_nb.checkpoint import shipped_weights, budget_summary
    return budget_summary(torch.load(shipped_weights(scale), weights_only=True)['budget'])


def test_table1_cpu_evaluates_the_weights_shipped_now():
    """table1_uhdn's cpu table evaluates the files in ikm_nb/weights/ as they are now: each scale's row states that file's
    budget (updates from the seed, data, device), so weights shipped without rerunning table1_uhdn fail here."""
    u = pd.read_csv(R / 'tables' / 'table1_uhdn_cpu.csv')
    for s in (2, 3, 4):
        rows = u[(u.source == 'ours: shipped weights') & (u.scale == s)]
        b = shipped_budget(s)
        assert list(rows.set) == ['Set5', 'Set14', 'BSD100'], s
        assert (rows.steps == b['steps']).all() and (rows.train_set == b['train_set']).all() and (rows.device == b['device']).all(), (s, b)
        assert abs(rows[rows.set == 'Set5'].psnr.item() - b['val_psnr']) < 0.05, (s, b)   # the run's own Set5 validation


def test_table2_cpu_shipped_weights_on_the_shipped_sets():
    "table2_sota's cpu table: the shipped x2 U-HDN+IKM on Set5 and Set14, with the budget its file records."
    t = pd.read_csv(R / 'tables' / 'table2_sota_cpu.csv')
    assert list(t.set) == ['Set5', 'Set14'] and (t.method == 'U-HDN+IKM').all()   # BSD100: table1_uhdn's
    assert (t.source == 'ours: shipped weights').all() and (t.params == 1_390_915).all()
    assert (t.steps == shipped_budget(2)['steps']).all()   # the file shipped now, its updates counted from the seed
    u = pd.read_csv(R / 'tables' / 'table1_uhdn_cpu.csv')   # the same weights, evaluated by table1_uhdn
    u = u[(u.source == 'ours: shipped weights') & (u.scale == 2)].set_index('set').psnr
    assert all(abs(r.psnr - u[r.set]) < 1e-9 for r in t.itertuples())


def test_fig05_06_cpu_twins_and_attentions():
    """fig05_06_attention's cpu tables: BSD100 86016 at x4 by bicubic, the two twins and the shipped weights; every IKM layer's
    attention recorded; growth channels' attentions constant (t = 0 on ReLU outputs), so fewer channels vary than exist."""
    t = pd.read_csv(R / 'tables' / 'fig05_06_attention_cpu.csv')
    k = pd.read_csv(R / 'tables' / 'fig05_06_attention_kernels_cpu.csv')
    assert list(t.method) == ['bicubic', 'vanilla twin', 'IKM twin', 'shipped U-HDN+IKM'] and (t.image == 'BSD100/86016').all()
    assert set(k.model) == {'IKM twin', 'shipped U-HDN+IKM'}
    assert k.groupby('model').layer.count().to_dict() == {'IKM twin': 30, 'shipped U-HDN+IKM': 120}   # 1 and 4 U-HDBs of 30 convs
    assert ((k.varying > 0) & (k.varying < k.channels)).any() and (k.varying <= k.channels).all()
    assert k[[f'a{i}{j}' for i in range(3) for j in range(3)]].stack().between(1, 2).all()   # the attention lies in (1, 2)


def test_reproduce_summary_all_ok():
    s = pd.read_csv(R / 'reproduce_cpu.csv')
    from ikm_nb.reproduce import experiment_notebooks
    assert (s.status == 'ok').all() and set(experiment_notebooks(R.parent / 'nbs')) == set(s.name)
    wall = (pd.to_datetime(s.finished).max() - pd.to_datetime(s.started).min()).total_seconds()
    assert wall <= 90 * 60   # make reproduce: every experiment notebook at the cpu profile in at most 90 minutes, in one run


def test_cpu_results_trained_on_the_shipped_t91():
    """Every cpu-profile table names the set its checkpoints record (T91, which ships in data/), and every committed run folder
    records the same images as the shipped T91 (its fingerprint), so a newcomer's `make reproduce` reruns these experiments."""
    import json
    from ikm_nb.data import find_train_set
    from ikm_nb.train import data_record
    shipped = data_record(find_train_set('T91', roots=[R.parent / 'data']))
    for name in ('table1_uhdn_cpu', 'fig09_threshold_cpu', 'fig10_iso_cpu', 'fig11_hourglass_cpu', 'table5_uhdn_ablation_cpu',
                 'table3_backbones_cpu', 'table4_receptive_field_cpu', 'fig08_model_size_cpu'):
        t = pd.read_csv(R / 'tables' / f'{name}.csv')
        mine = t[~t.get('source', pd.Series('', index=t.index)).astype(str).str.contains('shipped')]
        assert (mine.train_set == 'T91').all(), name
    runs = sorted((R / 'runs').glob('*/config.json'))
    # table1_uhdn 1, fig05_06 2 twins, fig08 24, the ablations 36 (fig09 9, fig10 9, fig11 9, table5 9 beyond the 3 shared
    # U-HDN runs), table3 48, table4 30; and the IKM study's runs (claim_*, counted by its own test)
    assert len([p for p in runs if not p.parent.name.startswith('claim_')]) == 1 + 2 + 24 + 36 + 48 + 30
    for p in runs:
        data = json.loads(p.read_text())['data']
        common = [k for k in shipped if k in data]   # (runs recorded before `content` existed have the others)
        assert 'fingerprint' in common and {k: data[k] for k in common} == {k: shipped[k] for k in common}, p.parent.name


def test_table3_cpu_every_model_with_three_seeds_paired_with_its_vanilla_twin():
    """Table III's cpu run: 4 backbones x 4 variants x 3 seeds, each run trained for its full budget (its own log), and the
    pairing the notebook relies on holds: a vanilla network and its +IKM twin built from the same seed start identical, and
    different seeds start differently."""
    import torch
    from ikm_nb.train import profile_config, build_model
    t = pd.read_csv(R / 'tables' / 'table3_backbones_cpu.csv')
    assert len(t) == 48 and (t.set == 'Set5').all() and (t.steps == 200).all()
    assert t.groupby(['backbone', 'variant']).seed.apply(lambda s: sorted(s) == [0, 1, 2]).all()
    assert t.groupby('backbone').variant.nunique().eq(4).all()
    assert (t.attention == t.variant.where(t.variant.isin(['ca', 'sa']), 'none')).all() and (t.ikm == (t.variant == 'ikm')).all()
    assert dict(zip(t.backbone, zip(t.block, t.channels, t.u_residual))) == {
        'rb': ('rb', 48, True), 'db': ('uhdb', 64, False), 'rdb': ('rdb', 64, True), 'uhdb': ('uhdb', 64, True)}
    for r in t.itertuples():
        run = R / 'runs' / f'table3_cpu_x2_{r.backbone}_{r.variant}_s{r.seed}_b8p24_200-steps'
        assert pd.read_csv(run / 'metrics.csv').step.max() == 200
        cfg = json.loads((run / 'config.json').read_text())['model']   # trained with the fields the table names
        assert (cfg['block'], cfg['channels'], cfg['attention'], cfg['ikm']) == (r.block, r.channels, r.attention, r.ikm)
    from ikm_nb.arch import TABLE3_BACKBONES, TABLE3_VARIANTS
    for b in ('rb', 'uhdb'):
        w = {}
        for v, s in (('none', 0), ('ikm', 0), ('none', 1)):
            c = profile_config('cpu', arch='uhdn', **{'channels': None, **TABLE3_BACKBONES[b], **TABLE3_VARIANTS[v]})
            torch.manual_seed(s); w[v, s] = build_model(c).state_dict()
        assert all(torch.equal(w['none', 0][k], w['ikm', 0][k]) for k in w['none', 0])
        assert not all(torch.equal(w['none', 0][k], w['none', 1][k]) for k in w['none', 0])


def test_table4_cpu_every_row_vanilla_and_ikm_with_three_seeds():
    "Table IV's cpu run: 5 (K, D) rows x vanilla / IKM x 3 seeds, full budgets, and IKM twins that start from the vanilla weights."
    import torch
    from ikm_nb.train import profile_config, build_model
    t = pd.read_csv(R / 'tables' / 'table4_receptive_field_cpu.csv')
    assert len(t) == 30 and (t.set == 'Set14').all() and (t.steps == 150).all()
    assert set(zip(t.kernel_size, t.dilation)) == {(3, 1), (3, 2), (3, 3), (5, 1), (5, 2)}
    assert (t.field == t.kernel_size + (t.kernel_size - 1) * (t.dilation - 1)).all()
    assert t.groupby(['kernel_size', 'dilation', 'ikm']).seed.apply(lambda s: sorted(s) == [0, 1, 2]).all()
    for r in t.itertuples():
        name = f"table4_cpu_x2_k{r.kernel_size}d{r.dilation}_{'ikm' if r.ikm else 'vanilla'}_s{r.seed}_b8p24_150-steps"
        assert pd.read_csv(R / 'runs' / name / 'metrics.csv').step.max() == 150
    w = {}
    for i in (False, True):
        torch.manual_seed(2); w[i] = build_model(profile_config('cpu', arch='table4_k5d2', ikm=i)).state_dict()
    assert all(torch.equal(w[False][k], w[True][k]) for k in w[False])


def test_ikm_study_runs_are_whole_and_its_summary_is_theirs():
    """Every committed run of the IKM study (results/runs/claim_*) is finished and has its twin; the study's summary table is
    what the runs' per-image evaluations give (recomputed here from eval.csv, with a t interval computed by hand)."""
    import json, math
    runs = sorted((R / 'runs').glob('claim_*/eval.csv'))
    if not runs: pytest.skip('no study run committed')
    psnr = {}
    for p in runs:
        cfg = json.loads((p.parent / 'config.json').read_text())['train']
        ev = pd.read_csv(p)
        steps = sorted(ev.step.unique())
        assert steps[-1] == cfg['steps'] and steps == list(range(500, cfg['steps'] + 1, 500)), p.parent.name
        assert (ev[ev.set == 'BSD100'].groupby('step').image.nunique() == 100).all()
        assert set(ev[ev.step == cfg['steps']].set) == {'BSD100', 'Set5', 'Set14'}
        assert (p.parent / 'attention.csv').exists() == bool(cfg['ikm'])
        _, backbone, variant, _, seed, _, *amp = p.parent.name.split('_')
        assert (variant == 'ikm') == bool(cfg['ikm']) and int(seed[1:]) == cfg['seed']
        assert amp == ([] if cfg['amp'] == 'off' else [cfg['amp']])                        # '_bf16' names the bf16 runs
        psnr[(backbone, variant, cfg['seed'], cfg['amp'])] = ev[(ev.step == cfg['steps']) & (ev.set == 'BSD100')].psnr.mean()
    assert all((b, v2, s, a) in psnr for b, v, s, a in psnr for v2 in ('none', 'ikm')), 'a study run without its twin'
    bf16 = [(b, s) for b, v, s, a in psnr if a == 'bf16' and v == 'ikm']
    if bf16:   # the bf16 section's table: IKM - vanilla under bf16, recomputed
        t16 = pd.read_csv(R / 'tables' / 'table3_ikm_study_bf16_cpu.csv').set_index('comparison')
        d16 = [psnr[(b, 'ikm', s, 'bf16')] - psnr[(b, 'none', s, 'bf16')] for b, s in bf16]
        row = t16.loc['IKM - vanilla, bf16']
        assert row.n == len(d16) and abs(row['mean'] - sum(d16) / len(d16)) < 1e-9
    psnr = {(b, v, s): x for (b, v, s, a), x in psnr.items() if a == 'off'}
    pairs = {(b, s) for b, v, s in psnr}
    assert all((b, v, s) in psnr for b, s in pairs for v in ('none', 'ikm')), 'a study run without its twin'
    summary = pd.read_csv(R / 'tables' / 'table3_ikm_study_summary_cpu.csv').set_index('backbone')
    for b in sorted({b for b, _ in pairs}):
        d = [psnr[(b, 'ikm', s)] - psnr[(b, 'none', s)] for bb, s in sorted(pairs) if bb == b]
        n = len(d); m = sum(d) / n
        assert summary.loc[b, 'n'] == n and abs(summary.loc[b, 'mean'] - m) < 1e-9
        if n >= 2:
            from scipy.stats import t as tdist
            sd = math.sqrt(sum((x - m) ** 2 for x in d) / (n - 1))
            assert abs(summary.loc[b, 'hi'] - (m + tdist.ppf(0.975, n - 1) * sd / math.sqrt(n))) < 1e-9


def test_the_cpu_weights_stages_form_a_chain():
    """Each finished stage of the CPU-trained weights (`scripts/train_cpu_weights.sh`) wrote the network of its run's last
    update: the budget of its weights.pt gives the run's updates and last Set5 validation, names the weights of the stage before
    it (for x3 and x4's first stage, that of the x2 stage the script names X34_FROM) with their sha256, counts updates from the
    seed, and holds no machine path."""
    import hashlib, re, torch
    from test_repo import MACHINE_PATH
    runs = R / 'runs_cpu'
    files = sorted(runs.glob('cpu_uhdn-ikm_x*_*/weights.pt'))
    assert files, 'no stage of the CPU-trained weights is finished'
    x34_from = re.search(r'^X34_FROM=([a-z])$', (R.parent / 'scripts' / 'train_cpu_weights.sh').read_text(), re.M).group(1)
    for w in files:
        b = torch.load(w, weights_only=True)['budget']
        cfg = json.loads((w.parent / 'config.json').read_text())['train']
        m = pd.read_csv(w.parent / 'metrics.csv')
        assert b['steps'] == cfg['steps'] == m.step.iloc[-1] and b['lr'] == cfg['lr'], w
        assert b['val_psnr'] == pytest.approx(m.dropna(subset=['psnr']).psnr.iloc[-1], abs=1e-4), w
        scale, stage = re.fullmatch(r'cpu_uhdn-ikm_x(\d)_([a-z])', w.parent.name).groups()
        prev = (runs / f'cpu_uhdn-ikm_x{scale}_{chr(ord(stage) - 1)}' / 'weights.pt' if stage != 'a'
                else None if scale == '2' else runs / f'cpu_uhdn-ikm_x2_{x34_from}' / 'weights.pt')
        if prev is None:
            assert b['init_weights'] is None and b['total_steps'] == b['steps'], w
        else:
            assert b['init_weights']['file'] == prev.relative_to(R.parent).as_posix(), w
            assert b['init_weights']['sha256'] == hashlib.sha256(prev.read_bytes()).hexdigest(), w
            assert b['total_steps'] == b['steps'] + torch.load(prev, weights_only=True)['budget']['total_steps'], w
        assert not MACHINE_PATH.search(json.dumps(b, default=str)), w


def test_cross_cpu_table_is_the_committed_runs(monkeypatch):
    """The README's cross-CPU paragraph reads results/tables/cross_cpu_table1_uhdn.csv: it holds what `benchmarks/cross_cpu.py`
    computes from the two commits' table1_uhdn runs (losses and PSNR as committed), and the runs did part at some update."""
    import subprocess
    monkeypatch.syspath_prepend(str(R.parent / 'benchmarks'))
    import cross_cpu
    for rev, _ in cross_cpu.RUNS:
        if subprocess.run(['git', '-C', str(R.parent), 'cat-file', '-e', f'{rev}^{{commit}}'], capture_output=True).returncode:
            pytest.skip(f"commit {rev} is not in this clone (a shallow clone)")
    got, both = cross_cpu.cross_cpu_table()
    committed = pd.read_csv(R / 'tables' / 'cross_cpu_table1_uhdn.csv')
    pd.testing.assert_frame_equal(got, committed, check_dtype=False)
    assert len(both) == 16 and 0 < committed.first_parted_update.iloc[0] <= 800   # 800 updates logged every 50
