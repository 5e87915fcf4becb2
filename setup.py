"""Install mmdeploy: ``pip install -e .`` (see README for the full environment)."""
from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent
version = {}
exec((here / 'mmdeploy' / 'version.py').read_text(), version)


def requirements(name):
    lines = (here / 'requirements' / name).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith('#')]


setup(
    name='mmdeploy',
    version=version['__version__'],
    description='Deploy OpenMMLab models to inference engines',
    long_description=(here / 'README.md').read_text() if (here / 'README.md').exists() else '',
    long_description_content_type='text/markdown',
    python_requires='>=3.10',
    packages=find_packages(include=['mmdeploy', 'mmdeploy.*']),
    # everything the default path imports (tests/config/test_install_requires.py checks it)
    install_requires=requirements('runtime.txt'),
    extras_require={'all': requirements('codebases.txt'),
                    'tests': requirements('tests.txt')},
    entry_points={'console_scripts': ['mmdeploy = mmdeploy.cli:main']},
)
