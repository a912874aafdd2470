"""nbdev 2 style setup: everything is read from settings.ini."""
from configparser import ConfigParser
import setuptools, shlex

config = ConfigParser(delimiters=['='])
config.read('settings.ini', encoding='utf-8')
cfg = config['DEFAULT']
lic = dict(apache2=('Apache Software License 2.0', 'OSI Approved :: Apache Software License'))[cfg['license']]
requirements = shlex.split(cfg.get('requirements', ''))
dev_requirements = shlex.split(cfg.get('dev_requirements', ''))
setuptools.setup(
    name=cfg['lib_name'], version=cfg['version'], license=lic[0],
    description=cfg['description'], author=cfg['author'], author_email=cfg['author_email'],
    packages=setuptools.find_packages(include=['ikm_nb', 'ikm_nb.*']),
    include_package_data=True, package_data={'ikm_nb': ['weights/*.pt']},
    install_requires=requirements, extras_require={'dev': dev_requirements},
    python_requires='>=' + cfg['min_python'], zip_safe=False,
    entry_points={'console_scripts': cfg.get('console_scripts', '').split(),
                  'nbdev': [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"]},
)
