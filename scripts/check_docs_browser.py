"""Open pages of the built site in a real browser (headless Chromium) and check what a reader sees.

    python scripts/check_docs_browser.py                       # the site in _docs/html, screenshots in _docs/screenshots
    python scripts/check_docs_browser.py --site /tmp/site/html --out /tmp/shots nbs/01_ikm.html index.html

For each page: no error in the browser's console, the math typeset by MathJax (its containers present, no TeX delimiter left
in the visible text), and a screenshot. Needs the `chromium` binary (Debian: `apt-get install chromium`). Exit status 1 if a
page fails.
"""
from __future__ import annotations
import argparse, re, shutil, subprocess, sys, tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = ['index.html', 'nbs/01_ikm.html', 'nbs/02_arch.html', 'nbs/14_stats.html', 'nbs/fig01_ikm_1d.html', 'nbs/table3_ikm_study.html',
         'api.html']
TEX_LEFT = re.compile(r'\$\$|\\\(|\\\[|\\frac|\\mathrm|\\hat\b')   # TeX a reader should never see as text

def chromium() -> str:
    for name in ('chromium', 'chromium-browser', 'google-chrome'):
        if shutil.which(name): return shutil.which(name)
    raise SystemExit("no Chromium found: install it (Debian: apt-get install chromium)")

def run(browser: str, url: str, *args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([browser, '--headless=new', '--no-sandbox', '--disable-gpu', '--hide-scrollbars',
                               f'--user-data-dir={profile}', '--enable-logging=stderr', '--v=0',
                               '--virtual-time-budget=15000', *args, url], capture_output=True, text=True, timeout=180)

def visible_text(html: str) -> str:
    "The page's text without scripts, styles, code cells and MathJax's own markup (where TeX source may legitimately sit)."
    html = re.sub(r'(?is)<(script|style|pre|code|mjx-container|mjx-assistive-mml|textarea)\b.*?</\1>', ' ', html)
    return re.sub(r'(?s)<[^>]+>', ' ', html)

def check(browser: str, site: Path, page: str, out: Path, height: int = 1800) -> list[str]:
    url = (site / page).resolve().as_uri()
    if not (site / page).exists(): return [f"{page}: missing"]
    dom = run(browser, url, '--dump-dom')
    problems = []
    console = [l for l in dom.stderr.splitlines() if 'CONSOLE' in l and ('error' in l.lower() or 'Uncaught' in l)]
    problems += [f"{page}: console: {l.strip()[:300]}" for l in console]
    math = dom.stdout.count('<mjx-container')
    left = TEX_LEFT.findall(visible_text(dom.stdout))
    if left: problems.append(f"{page}: {len(left)} TeX fragments left unrendered, e.g. {left[:3]}")
    shot = out / (page.replace('/', '_').removesuffix('.html') + '.png')
    run(browser, url, f'--screenshot={shot}', f'--window-size=1400,{height}')
    if not shot.exists(): problems.append(f"{page}: no screenshot")
    print(f"{page}: {math} formulas typeset, {len(console)} console errors, screenshot {shot.name}"
          + (f", PROBLEMS: {problems}" if problems else ''), flush=True)
    return problems

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('pages', nargs='*', default=PAGES, help=f'pages relative to the site (default: {" ".join(PAGES)})')
    ap.add_argument('--site', default=str(ROOT / '_docs' / 'html'), help='the built site (default: _docs/html)')
    ap.add_argument('--out', default=None, help='where the screenshots go (default: <site>/../screenshots)')
    ap.add_argument('--height', type=int, default=1800, help='screenshot height in pixels (default 1800; width 1400)')
    a = ap.parse_args(argv)
    site = Path(a.site)
    if not (site / 'index.html').exists(): raise SystemExit(f"no site in {site}: run `make docs` first")
    out = Path(a.out) if a.out else site.parent / 'screenshots'
    out.mkdir(parents=True, exist_ok=True)
    browser = chromium()
    problems = [p for page in a.pages for p in check(browser, site, page, out, a.height)]
    print(f"{len(a.pages)} pages, {len(problems)} problems" + ''.join(f"\n  {p}" for p in problems))
    sys.exit(1 if problems else 0)

if __name__ == '__main__':
    main()
