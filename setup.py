"""nbdev 2 style setup: everything is read from settings.ini (pyproject.toml, which nbdev_export writes, marks these fields dynamic)."""
from configparser import ConfigParser
from pathlib import Path
import setuptools, shlex

config = ConfigParser(delimiters=['='])
config.read('settings.ini', encoding='utf-8')
cfg = config['DEFAULT']
requirements = shlex.split(cfg.get('requirements', ''))
dev_requirements = shlex.split(cfg.get('dev_requirements', ''))
setuptools.setup(
    name=cfg['lib_name'], version=cfg['version'], license='Apache-2.0',
    description=cfg['description'], keywords=cfg['keywords'].split(),
    long_description=Path('README.md').read_text(encoding='utf-8') if Path('README.md').exists() else cfg['description'],
    long_description_content_type='text/markdown',
    author=cfg['author'], author_email=cfg['author_email'], url=cfg['git_url'], project_urls={'Source': cfg['git_url']},
    classifiers=['Programming Language :: Python :: 3', 'License :: OSI Approved :: Apache Software License',
                 'Topic :: Scientific/Engineering :: Image Processing'],
    packages=setuptools.find_packages(include=['ikm_nb', 'ikm_nb.*']),
    include_package_data=True, package_data={'ikm_nb': ['weights/*.pt', 'weights/*.md']},
    install_requires=requirements, extras_require={'dev': dev_requirements},
    python_requires='>=' + cfg['min_python'], zip_safe=False,
    entry_points={'console_scripts': cfg.get('console_scripts', '').split(),
                  'nbdev': [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"]},
)
