"""Write README.md from nbs/index.ipynb (nbdev_readme needs quarto, which this project does without).

Executes the notebook in the repository root; markdown cells are copied, code cells are shown with their output
(`#| hide`: neither; `#| echo: false`: output only). Every number of the README's results sections is computed there from
`results/`, so it cannot drift from the tables.

    .venv/bin/python scripts/make_readme.py           # write README.md
    .venv/bin/python scripts/make_readme.py --check   # exit 1 if README.md is not what the notebook and results/ give
"""
import sys
from pathlib import Path
from execnb.nbio import read_nb
from execnb.shell import CaptureShell

root = Path(__file__).resolve().parents[1]

def render() -> str:
    nb = read_nb(root / 'nbs' / 'index.ipynb')
    sh = CaptureShell(path=root)
    sh.run_all(nb, exc_stop=True)
    parts = []
    for c in nb.cells:
        src = c.source
        if c.cell_type == 'markdown': parts.append(src); continue
        flags = [l.strip() for l in src.splitlines() if l.startswith('#|')]
        if '#| hide' in flags: continue
        code = '\n'.join(l for l in src.splitlines() if not l.startswith('#|')).strip()
        if '#| echo: false' not in flags and code: parts.append(f'```python\n{code}\n```')
        for o in c.get('outputs', []):
            data = o.get('data', {})
            if 'text/markdown' in data: parts.append(''.join(data['text/markdown']))
            elif o.get('output_type') == 'stream': parts.append('```\n' + ''.join(o['text']).rstrip() + '\n```')
            elif 'text/plain' in data: parts.append('```\n' + ''.join(data['text/plain']).rstrip() + '\n```')
    return '\n\n'.join(p.strip() for p in parts if p.strip()) + '\n'

if __name__ == '__main__':
    text = render()
    readme = root / 'README.md'
    if '--check' in sys.argv[1:]:
        if readme.read_text() != text:
            sys.exit("README.md differs from what nbs/index.ipynb makes of results/: run `make readme` and commit it")
        print('README.md is up to date'); sys.exit(0)
    tmp = readme.with_name('.README.md.tmp'); tmp.write_text(text); tmp.replace(readme)
    print(f'README.md: {len(text.splitlines())} lines')
