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
    """The library appends each argument's comment to its docstring as an `Arguments:` block (`ikm_nb.utils.document_arguments`,
    so that help() shows them): render that block as the parameters' descriptions."""
    if 'Arguments:' not in lines and not any(l.startswith('Returns: ') for l in lines): return
    k = lines.index('Arguments:') if 'Arguments:' in lines else next(i for i, l in enumerate(lines) if l.startswith('Returns: '))
    block, fields = lines[k:], []
    for l in block:
        if l.startswith('    ') and ': ' in l:
            arg, text = l.strip().split(': ', 1); fields.append(f':param {arg}: {text}')
        elif l.startswith('Returns: '): fields.append(f":returns: {l.removeprefix('Returns: ')}")
    del lines[k:]
    lines.extend(fields)


def setup(app):
    app.connect('autodoc-process-docstring', _argument_comments)
