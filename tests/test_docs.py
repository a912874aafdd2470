"""The documentation site (`make docs`): built from a clean tree into a temporary folder, every notebook a page with its
outputs, every internal link and image resolving, math served locally, the API reference filled from the docstrings."""
import re, subprocess, sys
from pathlib import Path
from urllib.parse import unquote, urlparse
import pytest

ROOT = Path(__file__).resolve().parents[1]
HREF = re.compile(r'(?:href|src)="([^"]+)"')


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp('docs') / 'site'
    r = subprocess.run([sys.executable, 'scripts/build_docs.py', '--out', str(out)], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return out / 'html'


def notebook_names():
    return sorted(p.stem for p in (ROOT / 'nbs').glob('*.ipynb') if p.stem != 'index')


def test_every_notebook_is_a_page_with_outputs(site):
    "Each notebook's page shows every output its executed notebook has (the method notebooks executed by the build)."
    import json
    shown = method = 0
    for name in notebook_names():
        page = site / 'nbs' / f'{name}.html'
        assert page.exists(), f"no page for nbs/{name}.ipynb"
        html = page.read_text()
        staged = json.loads((site.parent / 'src' / 'nbs' / f'{name}.ipynb').read_text())
        visible = lambda o: not (o['output_type'] == 'stream' and o.get('name') == 'stderr') and (
            o['output_type'] == 'stream' or {'text/plain', 'text/markdown', 'text/html', 'image/png'} & set(o.get('data', {})))
        with_output = sum(1 for c in staged['cells'] if c['cell_type'] == 'code' and any(visible(o) for o in c.get('outputs', [])))
        assert html.count('class="cell_output') >= with_output, f"nbs/{name}: {with_output} cells with outputs, not all shown"
        if name.startswith(('01', '02', '03', 'fig', 'table')): assert with_output >= 1, f"nbs/{name}: a page without outputs"
        shown += with_output; method += with_output if name[0].isdigit() else 0
        assert '#| export' not in html and '#| hide' not in html, f"nbs/{name}: nbdev directives shown to the reader"
    assert shown >= 100 and method >= 10, (shown, method)   # (unexecuted, the method notebooks would show none)
    for page in ('index.html', 'api.html', 'docs/authors_code.html', 'docs/benchmarks.html'):
        assert (site / page).exists(), page


def test_the_experiment_pages_show_the_committed_results(site):
    "An experiment page is the executed copy (the cpu profile's parameters injected), not a re-run."
    text = re.sub(r'<[^>]+>', '', (site / 'nbs' / 'table3_ikm_study.html').read_text())
    assert 'profile = "cpu"' in text.replace('&quot;', '"'), "the page is not the cpu profile's executed copy"
    assert (site / 'nbs' / 'fig01_ikm_1d.html').read_text().count('<img') >= 2   # its figures


def test_every_internal_link_and_image_resolves(site):
    pages = sorted(p for p in site.rglob('*.html') if '_static' not in p.parts)   # (_static holds the theme's templates)
    assert len(pages) >= len(notebook_names()) + 3
    broken = []
    for page in pages:
        for target in HREF.findall(page.read_text()):
            u = urlparse(target)
            if u.scheme or target.startswith(('#', '//', 'mailto:', 'data:', 'javascript:')) or not u.path: continue
            if not (page.parent / unquote(u.path)).exists(): broken.append(f"{page.relative_to(site)} -> {target}")
    assert not broken, f"{len(broken)} broken internal links, e.g. {broken[:10]}"


def test_math_is_served_by_the_site_itself(site):
    "MathJax comes from _static (no internet needed), and the method page's equations are there for it to typeset."
    assert (site / '_static' / 'mathjax' / 'tex-chtml.js').exists()
    html = (site / 'nbs' / '01_ikm.html').read_text()
    assert 'src="../_static/mathjax/tex-chtml.js' in html and 'cdn.jsdelivr' not in html
    assert html.count('class="math') >= 20


def test_the_api_reference_shows_the_docstrings(site):
    html = (site / 'api.html').read_text()
    for name in ('ikm_nb.ikm.cag', 'ikm_nb.ikm.IKMConv2d', 'ikm_nb.arch.UHDN', 'ikm_nb.stats.paired_t', 'ikm_nb.train.TrainConfig'):
        assert f'id="{name}"' in html, name
    assert 'Holm' in html   # a docstring's text, not only the signatures
