"""The papermill driver's post-processing of executed notebooks."""
import nbformat
from ikm_nb.reproduce import compact_streams

def test_compact_streams_keeps_each_progress_bar_at_its_last_state(tmp_path):
    nb = nbformat.v4.new_notebook()
    c = nbformat.v4.new_code_cell('train()')
    s = lambda name, text: nbformat.v4.new_output('stream', name=name, text=text)
    c.outputs = [s('stderr', 'warning: 1 image skipped\n'), s('stderr', '\rrun:   0%|  | 0/3'), s('stderr', '\rrun:  33%|  | 1/3'),
                 s('stderr', '\rrun: 100%|##| 3/3'), s('stderr', '\n'), s('stdout', 'PSNR 30.1 dB\n'),
                 nbformat.v4.new_output('execute_result', data={'text/plain': '1'}, execution_count=1), s('stdout', 'a\rb\n')]
    nb.cells = [c, nbformat.v4.new_markdown_cell('text')]
    p = tmp_path / 'x.ipynb'; nbformat.write(nb, str(p))
    assert compact_streams(p) == 4
    out = nbformat.read(str(p), as_version=4).cells[0].outputs
    assert [o.output_type for o in out] == ['stream', 'stream', 'execute_result', 'stream']
    assert out[0].text == 'warning: 1 image skipped\nrun: 100%|##| 3/3\n' and out[1].text == 'PSNR 30.1 dB\n' and out[3].text == 'b\n'

def test_portable_paths_cuts_the_machine_folder(tmp_path):
    from ikm_nb.reproduce import portable_paths
    root = tmp_path / 'repo'
    nb = nbformat.v4.new_notebook()
    c = nbformat.v4.new_code_cell('train()')
    c.outputs = [nbformat.v4.new_output('stream', name='stderr', text=f'{root}/ikm_nb/data.py:420: UserWarning: 3 images skipped\n'),
                 nbformat.v4.new_output('execute_result', data={'text/plain': f"PosixPath('{root}/results/runs/a')"}, execution_count=1),
                 nbformat.v4.new_output('stream', name='stdout', text='results/runs/a\n')]
    nb.cells = [c]
    nb.metadata['papermill'] = dict(input_path=f'{root}/nbs/x.ipynb', output_path=f'{root}/results/notebooks/.x.tmp.ipynb')
    p = tmp_path / 'x.ipynb'; nbformat.write(nb, str(p))
    assert portable_paths(p, root, 'nbs/x.ipynb', 'results/notebooks/x.ipynb') == 2
    got = nbformat.read(str(p), as_version=4)
    assert str(root) not in p.read_text()
    assert got.cells[0].outputs[0].text == 'ikm_nb/data.py:420: UserWarning: 3 images skipped\n'
    assert got.metadata.papermill.input_path == 'nbs/x.ipynb' and got.metadata.papermill.output_path == 'results/notebooks/x.ipynb'

def test_portable_paths_names_the_shared_folder_relative_to_the_repository(tmp_path):
    "A message naming the data folder beside the repository (../shared) keeps that name, relative, not the machine's path."
    from ikm_nb.reproduce import portable_paths
    root = tmp_path / 'repo'
    nb = nbformat.v4.new_notebook()
    c = nbformat.v4.new_code_cell('find()')
    c.outputs = [nbformat.v4.new_output('stream', name='stdout', text=f'not found (looked in data/U, {tmp_path}/shared/data/U)\n')]
    nb.cells = [c]
    p = tmp_path / 'x.ipynb'; nbformat.write(nb, str(p))
    assert portable_paths(p, root, 'nbs/x.ipynb', 'results/notebooks/x.ipynb') == 1
    assert nbformat.read(str(p), as_version=4).cells[0].outputs[0].text == 'not found (looked in data/U, ../shared/data/U)\n'

def test_reproduce_only_replaces_its_rows_of_the_summary(tmp_path, monkeypatch):
    """`ikm reproduce --only NAME` keeps the other notebooks' rows of `reproduce_{profile}.csv` (a subset rerun must not erase the
    record of the full run) and writes when, at which commit and on which CPU each notebook ran."""
    import pandas as pd
    import ikm_nb.reproduce as rp
    calls = []
    def fake_run(name, nb, profile, out_dir, kernel, cwd, log_output):
        calls.append(name); return rp.RunRecord(name, profile, 'ok', 1.5, f'notebooks/{name}.ipynb')
    monkeypatch.setattr(rp, '_run_one', fake_run)
    old = pd.DataFrame([dict(name=n, profile='smoke', status='ok', seconds=s, output='x', error='', finished='2026-01-01 00:00',
                             commit='abc1234') for n, s in (('fig01_ikm_1d', 50.0), ('table1_bicubic', 20.0))])
    old.to_csv(tmp_path / 'reproduce_smoke.csv', index=False)
    rp.reproduce('smoke', only='table1_bicubic', out_dir=tmp_path)
    got = pd.read_csv(tmp_path / 'reproduce_smoke.csv', keep_default_na=False).set_index('name')
    assert calls == ['table1_bicubic'] and list(got.index) == ['fig01_ikm_1d', 'table1_bicubic']
    assert got.loc['fig01_ikm_1d', 'seconds'] == 50.0 and got.loc['fig01_ikm_1d', 'commit'] == 'abc1234'
    assert got.loc['table1_bicubic', 'seconds'] == 1.5 and got.loc['table1_bicubic', 'finished'] != '2026-01-01 00:00'
    assert len(got.loc['table1_bicubic', 'commit']) >= 7   # run inside the repository's git checkout
    from ikm_nb.utils import device_name
    assert got.loc['table1_bicubic', 'cpu'] == device_name('cpu') and got.loc['fig01_ikm_1d', 'cpu'] == ''   # old rows: unknown
    rp.reproduce('smoke', only='fig01', out_dir=tmp_path / 'fresh')   # no summary yet: only the notebooks run
    assert list(pd.read_csv(tmp_path / 'fresh' / 'reproduce_smoke.csv').name) == ['fig01_ikm_1d']

def test_reproduce_runs_notebooks_side_by_side(tmp_path):
    """With jobs=2 two notebooks run at once in worker processes (papermill and a kernel each) and their records carry when each
    started and ended; the summary holds both, whichever finished first."""
    import pandas as pd
    from ikm_nb.reproduce import reproduce
    df = reproduce('smoke', only=['table1_bicubic', 'fig01'], out_dir=tmp_path, jobs=2)
    assert list(df.name) == ['fig01_ikm_1d', 'table1_bicubic'] and (df.status == 'ok').all(), df.error.tolist()
    assert all((tmp_path / 'notebooks' / 'smoke' / f'{n}.ipynb').exists() for n in df.name)   # not beside the cpu copies
    start, end = pd.to_datetime(df.started), pd.to_datetime(df.finished)
    assert (start <= end).all() and start.max() < end.min()   # they overlapped: the second started before the first ended
    assert list(pd.read_csv(tmp_path / 'reproduce_smoke.csv').name) == list(df.name)
