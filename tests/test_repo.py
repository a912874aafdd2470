"""What a newcomer's clone must hold: no path of the machine that made a file, executed notebooks of the committed source,
the data the cpu profile needs."""
import json, re, subprocess
from pathlib import Path
import pytest
from ikm_nb.reproduce import experiment_notebooks

ROOT = Path(__file__).resolve().parents[1]
# an absolute path of some machine: a home or work folder (a temporary folder in an example command is no machine's)
MACHINE_PATH = re.compile(r'(?<![\w.~$-])/(?:work|root|home|Users|mnt|private/var|var/folders)/[\w.-]+')

def tracked_text_files():
    try: out = subprocess.run(['git', 'ls-files', '-z'], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError): pytest.skip('not a git checkout')
    for name in out.decode().split('\0'):
        p = ROOT / name
        if not name or not p.is_file() or p.stat().st_size > 5_000_000: continue
        b = p.read_bytes()
        if b'\0' in b[:8192]: continue   # binary
        yield name, b.decode('utf-8', errors='replace')

def test_no_committed_file_holds_a_machine_path():
    here = str(ROOT.resolve())
    bad = []
    for name, text in tracked_text_files():
        for i, line in enumerate(text.splitlines(), 1):
            if here in line or MACHINE_PATH.search(line): bad.append(f"{name}:{i}: {line.strip()[:160]}")
    assert not bad, f"{len(bad)} line(s) hold an absolute path of a machine (write paths relative to the repository):\n" + '\n'.join(bad[:20])

def test_the_machine_path_pattern():
    "The pattern finds what it is for and leaves relative paths, URLs' own paths and temporary examples alone."
    slash = '/'   # (the examples are assembled, so that this file holds no such path itself)
    for s in (f"out_dir='{slash}work/ci_r/results/runs'", f'File "{slash}home/me/ikm/x.py"', f'--out {slash}root/out/b.md'):
        assert MACHINE_PATH.search(s), s
    for s in ('results/runs/x', 'nbs/work/x', '/tmp/x.py', '$OUT/bench.md', 'a.b/home/x'):
        assert not MACHINE_PATH.search(s), s

def code_cells(nb_path, drop_injected: bool):
    nb = json.loads(Path(nb_path).read_text())
    return [''.join(c['source']) for c in nb['cells'] if c['cell_type'] == 'code'
            and not (drop_injected and 'injected-parameters' in c.get('metadata', {}).get('tags', []))]

def test_executed_notebooks_are_of_the_committed_source():
    "Every experiment notebook has its executed copy in results/notebooks, run by papermill at the cpu profile from this source."
    nbs = experiment_notebooks(ROOT / 'nbs')
    executed = {p.stem: p for p in (ROOT / 'results' / 'notebooks').glob('*.ipynb') if not p.name.endswith('.failed.ipynb')}
    assert sorted(executed) == sorted(nbs), "results/notebooks and nbs/ hold different experiments: run make reproduce"
    for name, src in nbs.items():
        assert code_cells(executed[name], True) == code_cells(src, False), \
            f"results/notebooks/{name}.ipynb was run from other code than nbs/{name}.ipynb: rerun it (ikm reproduce --only {name})"
        nb = json.loads(executed[name].read_text())
        injected = [c for c in nb['cells'] if 'injected-parameters' in c.get('metadata', {}).get('tags', [])]
        assert injected and "profile = \"cpu\"" in ''.join(injected[0]['source']), name

def test_the_cpu_profile_needs_no_shared_data(monkeypatch, tmp_path):
    "Every set the cpu profile trains or evaluates on ships in data/ (the shared folder hidden)."
    monkeypatch.setenv('IKM_SHARED_DATA', str(tmp_path / 'absent')); monkeypatch.delenv('CI', raising=False)
    from ikm_nb.data import find_benchmark, find_train_set, data_roots
    from ikm_nb.train import profile_config
    assert data_roots() == [ROOT / 'data']
    assert len(find_train_set(profile_config('cpu').train_set)) == 91
    for s, n in (('Set5', 5), ('Set14', 14), ('BSD100', 100)): assert len(find_benchmark(s)) == n

def test_readme_is_generated_from_results():
    "README.md is what scripts/make_readme.py makes of nbs/index.ipynb and the committed results (no number typed by hand)."
    import sys
    r = subprocess.run([sys.executable, 'scripts/make_readme.py', '--check'], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:] + r.stdout[-2000:]

def test_library_lines_fit_on_a_screen():
    "Every line of the exported library is at most 130 characters (the module docstring and nbdev's index excepted)."
    long = [f"{p.name}:{i}: {len(l)}" for p in sorted((ROOT / 'ikm_nb').glob('*.py')) if p.name != '_modidx.py'
            for i, l in enumerate(p.read_text().splitlines(), 1) if i > 1 and len(l) > 130]
    assert not long, long

AUTHORS = 'https://github.com/YuanfeiHuang/IKM/blob/'
AUTHORS_COMMIT = 'cf723d44770ee3046b0cd7a92299012a64ef5543'

def _authors_links(text: str) -> set[str]:
    import re
    return set(re.findall(re.escape(AUTHORS) + r'([0-9a-f]+/[\w./-]+(?:#L\d+(?:-L\d+)?)?)', text))

def test_the_authors_code_is_cited_at_its_commit_and_collected_in_one_page():
    """No file cites the authors' notes file the repository lacks; every link to the authors' code names the fixed commit; and
    docs/authors_code.md lists every file and line range that a notebook cites."""
    page = (ROOT / 'docs' / 'authors_code.md').read_text()
    listed = _authors_links(page)
    assert len(listed) >= 20 and all(l.startswith(AUTHORS_COMMIT + '/') for l in listed)
    files = [*sorted((ROOT / 'nbs').glob('*.ipynb')), ROOT / 'README.md', *sorted((ROOT / 'docs').glob('*.md'))]
    cited = set()
    for p in files:
        text = p.read_text()
        assert 'NOTES.md' not in text, f"{p.name} cites NOTES.md, a file the repository does not have"
        links = _authors_links(text)
        assert all(l.startswith(AUTHORS_COMMIT + '/') for l in links), (p.name, links)
        cited |= links
    assert len(cited) >= 20 and cited <= listed, f"cited in the notebooks but missing from docs/authors_code.md: {sorted(cited - listed)}"

def test_the_readme_opens_with_what_ikm_is_then_the_commands_then_the_answer():
    "A reader meets the method (a paragraph and Fig. 1), then the two commands, then the answer to 'does IKM work?'."
    heads = [l for l in (ROOT / 'README.md').read_text().splitlines() if l.startswith('## ')]
    assert heads[:3] == ['## What IKM is, in a paragraph and a picture', '## The two commands', '## Does IKM work?'], heads[:3]
    first = (ROOT / 'README.md').read_text().split('## The two commands')[0]
    assert 'results/figures/fig01_ikm_1d.png' in first and 'Eq. 12' in first
    assert heads.index('## Complexity: paper vs ours') > max(i for i, h in enumerate(heads) if h.startswith(('## Table', '## Fig')))

def test_every_file_the_prose_names_exists():
    "A test, benchmark, script or doc that a notebook, the README or docs/ names by path is in the repository."
    named = re.compile(r'\b((?:tests|benchmarks|scripts|docs)/[\w./-]+\.(?:py|md|sh|txt))\b')
    missing = set()
    for p in [*sorted((ROOT / 'nbs').glob('*.ipynb')), ROOT / 'README.md', *sorted((ROOT / 'docs').glob('*.md'))]:
        missing |= {(p.name, m) for m in named.findall(p.read_text()) if not (ROOT / m).exists()}
    assert not missing, sorted(missing)

def test_the_weights_readme_gives_each_shipped_file_its_own_budget():
    "ikm_nb/weights/README.md's table row of each shipped file states that file's updates (from the seed) and Set5 PSNR."
    import torch
    text = (ROOT / 'ikm_nb' / 'weights' / 'README.md').read_text()
    rows = {l.split('|')[1].strip(' `'): l for l in text.splitlines() if l.startswith('| `uhdn_x')}
    for s in (2, 3, 4):
        b = torch.load(ROOT / 'ikm_nb' / 'weights' / f'uhdn_x{s}.pt', weights_only=True)['budget']
        row = rows[f'uhdn_x{s}.pt']
        psnr = b['val_psnr'] if b.get('val_psnr') is not None else b['best_psnr']
        steps = b.get('total_steps', b['steps'])   # from the seed, for weights trained in a chain of runs
        assert f"| {steps:,} |" in row and f"{psnr:.2f} dB" in row, (row, b)
        assert not MACHINE_PATH.search(json.dumps(b, default=str)), b   # the budget travels inside a binary file
