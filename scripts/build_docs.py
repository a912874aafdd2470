"""Build the documentation site from the notebooks, with their outputs (Sphinx, myst-nb, the book theme, MathJax served locally).

    python scripts/build_docs.py                 # into _docs/ (make docs)
    python scripts/build_docs.py --out /tmp/site --force

The pages, staged in <out>/src with the repository's layout so that every relative link of a notebook or of the README works:
- the home page is README.md;
- the method and engine notebooks (nbs/0*, 1*, 2*) are executed at build time, in nbs/ as nbdev_test runs them;
- the experiment notebooks (nbs/fig*, nbs/table*) are their executed copies in results/notebooks/ (run by `make reproduce`,
  not retrained here), with the markdown of the source in nbs/ (the code cells are the same: tests/test_repo.py checks it);
- docs/*.md, ikm_nb/weights/README.md, and an API reference of every module (autodoc: the docstrings `help()` shows);
- the files the pages link to (figures, tables) are copied beside them; links to folders point at the repository on GitHub.
The HTML is written to <out>/html; the build fails on a broken cross-reference. `tests/test_docs.py` builds it into a temporary
folder and checks every page, output and internal link.
"""
from __future__ import annotations
import argparse, json, os, re, shutil, subprocess, sys, time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GIT_URL = 'https://github.com/ikm-nb/ikm_nb'   # settings.ini's git_url
EXPERIMENT = re.compile(r'^(fig|table)\d')
SECTIONS = [('Method', ('0',)), ('Data, metrics and statistics', ('1',)), ('Engine', ('2',)), ('Experiments', ('fig', 'table'))]
LINK = re.compile(r'(\]\()([^)\s]+)(\))')   # markdown links and images: [text](target)


def method_notebooks() -> list[Path]:
    return sorted(p for p in (ROOT / 'nbs').glob('[0-9]*.ipynb'))

def experiment_notebooks() -> list[Path]:
    return sorted(p for p in (ROOT / 'nbs').glob('*.ipynb') if EXPERIMENT.match(p.name))

def execute(path: str) -> tuple[str, dict, float]:
    "Execute one notebook in nbs/ (the working directory nbdev_test uses); its executed JSON and the seconds taken."
    import nbformat
    from nbclient import NotebookClient
    t0 = time.perf_counter()
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=1200, kernel_name='python3', resources={'metadata': {'path': str(ROOT / 'nbs')}}).execute()
    return path, nbformat.writes(nb), time.perf_counter() - t0

def merge_executed(source: Path, executed: Path) -> dict:
    """The executed notebook with the source's markdown: code cells are taken from `executed` in order (papermill's
    injected-parameters cell kept where it is), markdown cells from `source`. Fails if the code differs."""
    src, run = json.loads(source.read_text()), json.loads(executed.read_text())
    code = [c for c in run['cells'] if c['cell_type'] == 'code']
    cells = []
    for c in src['cells']:
        if c['cell_type'] != 'code': cells.append(c); continue
        if code and 'injected-parameters' in code[0].get('metadata', {}).get('tags', []): cells.append(code.pop(0))
        if not code or ''.join(code[0]['source']).strip() != ''.join(c['source']).strip():
            raise SystemExit(f"{executed} was not run from the code of {source}: run `ikm reproduce --only {source.stem}` first")
        cells.append(code.pop(0))
    run['cells'] = cells
    return run

DIRECTIVE = re.compile(r'^#\|\s*(\w+)')

def reader_cells(nb: dict) -> dict:
    """The cells a reader sees, as nbdev's own site shows them: `#| hide` and `#| default_exp` cells dropped, the code of
    `#| echo: false` cells hidden (their output shown), `#|` lines removed."""
    cells = []
    for c in nb['cells']:
        if c['cell_type'] == 'code':
            lines = ''.join(c['source']).splitlines(keepends=True)
            names = [m.group(1) for l in lines if (m := DIRECTIVE.match(l))]
            if 'hide' in names or 'default_exp' in names: continue
            if any(re.match(r'^#\|\s*echo:\s*false', l) for l in lines):   # the output without its code
                c.setdefault('metadata', {}).setdefault('tags', []).append('remove-input')
            c['source'] = ''.join(l for l in lines if not DIRECTIVE.match(l))
        cells.append(c)
    nb['cells'] = cells
    return nb

def rewrite_links(text: str, page: Path, src: Path, copy: set) -> str:
    """Links of a page staged at `page` (relative to the staging root `src`): an executed experiment notebook becomes its page,
    a folder becomes its GitHub tree, a file that is not a page is copied beside the pages (collected in `copy`)."""
    def fix(m):
        target = m.group(2)
        if re.match(r'^[a-z]+:|^#|^/', target): return m.group(0)
        path, _, frag = target.partition('#')
        repo_path = (ROOT / page.parent / path).resolve()
        try: rel = repo_path.relative_to(ROOT)
        except ValueError: return m.group(0)
        if rel.parts[:2] == ('results', 'notebooks') and rel.suffix == '.ipynb':   # the executed copy is the page
            new = os.path.relpath(ROOT / 'nbs' / rel.name, ROOT / page.parent)
            return m.group(1) + new + ('#' + frag if frag else '') + m.group(3)
        if repo_path.is_dir() or path.endswith('/'):
            return m.group(1) + f"{GIT_URL}/tree/main/{rel.as_posix()}" + m.group(3)
        if repo_path.is_file() and repo_path.suffix == '.md': copy.add(rel)   # a Markdown file: staged as a page
        elif repo_path.is_file() and repo_path.suffix != '.ipynb': copy.add(rel)
        return m.group(0)
    return LINK.sub(fix, text)

def stage(src: Path, jobs: int, run: bool = True) -> None:
    "Write the pages into `src` (`run=False`: the method notebooks without outputs)."
    import nbformat
    copy = set()
    (src / 'nbs').mkdir(parents=True)
    methods = method_notebooks()
    print(f"executing {len(methods)} method and engine notebooks, {jobs} at a time", flush=True)
    with ProcessPoolExecutor(jobs) as pool:
        done = (pool.map(execute, [str(p) for p in methods]) if run else
                ((str(p), p.read_text(), 0.0) for p in methods))
        for path, text, secs in done:
            print(f"  {Path(path).name}: {secs:.0f} s", flush=True)
            nb = reader_cells(json.loads(text))
            for c in nb['cells']:
                if c['cell_type'] == 'markdown': c['source'] = rewrite_links(''.join(c['source']), Path('nbs/x'), src, copy)
            (src / 'nbs' / Path(path).name).write_text(json.dumps(nb, indent=1))
    for p in experiment_notebooks():
        executed = ROOT / 'results' / 'notebooks' / p.name
        if not executed.exists(): raise SystemExit(f"{executed} is missing: run `make reproduce` first")
        nb = reader_cells(merge_executed(p, executed))
        for c in nb['cells']:
            if c['cell_type'] == 'markdown': c['source'] = rewrite_links(''.join(c['source']), Path('nbs/x'), src, copy)
        nbformat.validate(nbformat.from_dict(nb))
        (src / 'nbs' / p.name).write_text(json.dumps(nb, indent=1))
    readme = rewrite_links((ROOT / 'README.md').read_text(), Path('README.md'), src, copy)
    pages = {Path('docs') / p.name for p in (ROOT / 'docs').glob('*.md')}
    todo = pages | {r for r in copy if r.suffix == '.md'}
    while todo:   # every Markdown file a page links to is a page too
        rel = todo.pop(); pages.add(rel)
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(rewrite_links((ROOT / rel).read_text(), rel, src, copy))
        todo |= {r for r in copy if r.suffix == '.md'} - pages
    copy = {r for r in copy if r.suffix != '.md'}
    pages = sorted(pages)
    modules = sorted(p.stem for p in (ROOT / 'ikm_nb').glob('*.py') if not p.stem.startswith('_'))
    (src / 'api.md').write_text('# API reference\n\nEvery public function and class of the library, with the docstring `help()` '
                                'shows; each module is exported from the notebook of the same topic.\n\n' +
                                ''.join(f"## `ikm_nb.{m}`\n\n```{{eval-rst}}\n.. automodule:: ikm_nb.{m}\n   :members:\n```\n\n" for m in modules))
    toc = []
    names = sorted(p.stem for p in (src / 'nbs').glob('*.ipynb'))
    for caption, prefixes in SECTIONS:
        entries = [f'nbs/{n}' for n in names if n.startswith(prefixes)]
        toc.append(f"```{{toctree}}\n:hidden:\n:caption: {caption}\n\n" + '\n'.join(entries) + '\n```\n')
    toc.append("```{toctree}\n:hidden:\n:caption: Reference\n\napi\n" + '\n'.join(r.with_suffix('').as_posix() for r in pages) + '\n```\n')
    (src / 'index.md').write_text(readme + '\n\n' + '\n'.join(toc))
    for rel in sorted(copy):
        (src / rel).parent.mkdir(parents=True, exist_ok=True); shutil.copy2(ROOT / rel, src / rel)
    shutil.copy2(ROOT / 'docs' / 'conf.py', src / 'conf.py')

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', default=str(ROOT / '_docs'), help='output folder (default: _docs/); the site is in <out>/html')
    ap.add_argument('--force', action='store_true', help='replace an existing output folder')
    ap.add_argument('--jobs', type=int, default=os.cpu_count() or 1, help='notebooks executed at once')
    ap.add_argument('--no-execute', action='store_true', help='stage the method notebooks without running them (a quick look at the layout)')
    a = ap.parse_args(argv)
    out = Path(a.out).resolve()
    if out.exists() and any(out.iterdir()):
        if not a.force: raise SystemExit(f"{out} exists: pass --force to replace it")
        shutil.rmtree(out)
    tmp = out.with_name(out.name + f'.{os.getpid()}.tmp')
    try:
        stage(tmp / 'src', a.jobs, not a.no_execute)
        r = subprocess.run([sys.executable, '-m', 'sphinx', '-b', 'html', '-q', '-j', str(a.jobs), str(tmp / 'src'), str(tmp / 'html')],
                           capture_output=True, text=True)
        (tmp / 'sphinx.log').write_text(r.stdout + r.stderr)
        broken = [l for l in r.stderr.splitlines() if 'xref_missing' in l or 'reference target not found' in l
                  or 'toc.not_readable' in l or 'image file not readable' in l]
        if r.returncode or broken:
            raise SystemExit(f"sphinx failed ({r.returncode}); broken references:\n" + '\n'.join(broken[:30]) + '\n' + r.stderr[-3000:])
        if out.exists(): out.rmdir()
        tmp.rename(out)
    finally:
        if tmp.exists(): shutil.rmtree(tmp)
    print(f"site: {out / 'html' / 'index.html'}")

if __name__ == '__main__':
    main()
