"""Authoring aid: convert between a notebook and a 'percent' script draft.

    python scripts/nbpy.py to-nb draft.py nbs/01_ikm.ipynb   # write the notebook from a draft
    python scripts/nbpy.py to-py nbs/01_ikm.ipynb draft.py   # write a draft from the notebook

Cells start with `# %%` (code; `# %% tags=["parameters"]` for papermill's parameters cell) or
`# %% [markdown]` (each markdown line prefixed by `# `). The notebook stays the source of truth:
drafts are scratch files, not committed. Outputs are not kept (nbdev_clean would drop them anyway).
"""
import json, re, sys
from pathlib import Path

HDR = re.compile(r'^# %%(?P<md> \[markdown\])?(?: tags=(?P<tags>\[.*\]))?\s*$')

def to_nb(src, dst):
    cells, cur = [], None
    for line in Path(src).read_text().splitlines():
        m = HDR.match(line)
        if m:
            cur = dict(kind='markdown' if m['md'] else 'code', tags=json.loads(m['tags']) if m['tags'] else [], lines=[])
            cells.append(cur); continue
        if cur is None: continue
        if cur['kind'] == 'markdown': line = line[2:] if line.startswith('# ') else line.lstrip('#')
        cur['lines'].append(line)
    out = []
    for c in cells:
        while c['lines'] and not c['lines'][-1].strip(): c['lines'].pop()
        while c['lines'] and not c['lines'][0].strip(): c['lines'].pop(0)
        src_lines = [l + '\n' for l in c['lines']]
        if src_lines: src_lines[-1] = src_lines[-1][:-1]
        meta = {'tags': c['tags']} if c['tags'] else {}
        cell = dict(cell_type=c['kind'], metadata=meta, source=src_lines)
        if c['kind'] == 'code': cell.update(execution_count=None, outputs=[])
        out.append(cell)
    nb = dict(cells=out, metadata={'kernelspec': {'display_name': 'python3', 'language': 'python', 'name': 'python3'}},
              nbformat=4, nbformat_minor=5)
    for i, c in enumerate(nb['cells']): c['id'] = f'c{i:03d}'
    Path(dst).write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n')

def to_py(src, dst):
    nb = json.loads(Path(src).read_text())
    parts = []
    for c in nb['cells']:
        tags = c.get('metadata', {}).get('tags', [])
        t = f' tags={json.dumps(tags)}' if tags else ''
        body = ''.join(c['source'])
        if c['cell_type'] == 'markdown':
            parts.append(f'# %% [markdown]{t}\n' + '\n'.join('# ' + l if l else '#' for l in body.split('\n')))
        else: parts.append(f'# %%{t}\n' + body)
    Path(dst).write_text('\n\n'.join(parts) + '\n')

if __name__ == '__main__':
    cmd, a, b = sys.argv[1:4]
    {'to-nb': to_nb, 'to-py': to_py}[cmd](a, b)
