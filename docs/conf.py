# Sphinx configuration of the documentation site. scripts/build_docs.py copies it into the staged sources and runs Sphinx there.
project = 'ikm_nb'
author = 'the ikm_nb authors'
copyright = '2026, the ikm_nb authors'

extensions = [
    'myst_nb',                  # notebooks (.ipynb, with their outputs) and Markdown pages
    'sphinx.ext.autodoc',       # the API reference, from the docstrings help() shows
    'sphinx-mathjax-offline',   # MathJax 3 served from the site itself: math renders without the internet
]
source_suffix = {'.md': 'myst-nb', '.ipynb': 'myst-nb'}
exclude_patterns = ['_build', '**.ipynb_checkpoints']

myst_enable_extensions = ['dollarmath', 'amsmath']   # $...$ and $$...$$ as the notebooks write them
myst_heading_anchors = 3                            # links to #a-heading within and across pages
nb_execution_mode = 'off'                           # build_docs.py executes the method notebooks; experiments come executed
nb_merge_streams = True
nb_output_stderr = 'remove'                         # progress bars and warnings of the runs, not results

autodoc_member_order = 'bysource'
autodoc_typehints = 'description'

html_theme = 'sphinx_book_theme'
html_title = 'ikm_nb: Image-specific Convolutional Kernel Modulation, reproduced'
html_theme_options = {
    'repository_url': 'https://github.com/ikm-nb/ikm_nb',
    'use_repository_button': True,
    'show_toc_level': 2,
    'navigation_with_keys': False,
}
suppress_warnings = ['myst.header', 'misc.highlighting_failure']
autodoc_inherit_docstrings = False   # a torch method without its own docstring (forward) is not documented with torch's text


def _argument_comments(app, what, name, obj, options, lines):
    """The library documents each argument by a comment beside it in the signature (nbdev's docments): show those comments
    as the parameters' descriptions, as `nbdev.showdoc` does."""
    if what not in ('function', 'method', 'class'): return
    try:
        from fastcore.docments import docments
        docs = docments(obj, full=False)
    except Exception: return
    described = '\n'.join(lines)
    for arg, text in docs.items():
        if text and arg != 'return' and f':param {arg}:' not in described: lines.append(f':param {arg}: {text}')
    if docs.get('return') and ':returns:' not in described: lines.append(f":returns: {docs['return']}")


def setup(app):
    app.connect('autodoc-process-docstring', _argument_comments)
