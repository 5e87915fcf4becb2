"""Issue 12, item 8: ``pip install .`` brings what mmdeploy's default path imports, and nothing unused.

The default path (deploy an mmpretrain model on ONNX Runtime) runs in a fresh interpreter that records
every top-level module mmdeploy's own code imports; each third-party one must be a distribution of
``install_requires`` or the codebase itself. In the other direction, each ``install_requires`` entry must
be imported somewhere in mmdeploy's source. The requirements files must agree with the constraints.
"""
import ast
import json
import os
import re
import runpy
import subprocess
import sys
from importlib.metadata import packages_distributions
from unittest import mock

import cv2
import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY_MODEL = os.path.join(REPO, 'tests', 'reliability', 'configs', 'tiny_classifier.py')
PROBE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'install_requires_probe.py')
#: the codebase of the default path: the user installs it (it is what they deploy)
CODEBASE_DISTS = {'mmpretrain'}


def _norm(name):
    return re.sub(r'[-_.]+', '-', name).lower()


def _requirement_name(line):
    return _norm(re.split(r'[<>=!~;\[ ]', line.strip(), maxsplit=1)[0])


@pytest.fixture(scope='module')
def install_requires():
    import setuptools

    with mock.patch.object(setuptools, 'setup') as setup:
        cwd = os.getcwd()
        try:
            os.chdir(REPO)
            runpy.run_path(os.path.join(REPO, 'setup.py'), run_name='__main__')
        finally:
            os.chdir(cwd)
    return {_requirement_name(r) for r in setup.call_args.kwargs['install_requires']}


def _dists_of(modules):
    """``{module: {distribution names}}`` for third-party top-level modules."""
    mapping = packages_distributions()
    out = {}
    for module in modules:
        if module in sys.stdlib_module_names or module == 'mmdeploy' or module.startswith('_'):
            continue
        out[module] = {_norm(d) for d in mapping.get(module, [module])}
    return out


def test_default_path_imports_are_installed_by_setup(install_requires, tmp_path):
    image = str(tmp_path / 'img.png')
    cv2.imwrite(image, np.random.RandomState(0).randint(0, 256, (48, 64, 3), dtype=np.uint8))
    proc = subprocess.run([sys.executable, PROBE, TINY_MODEL, image, str(tmp_path / 'work')], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    imported = json.loads(proc.stdout.splitlines()[-1])
    dists = _dists_of(imported)
    assert {'torch', 'onnx', 'onnxruntime', 'cv2', 'mmengine'} <= set(dists)  # the probe saw the path
    missing = {module: sorted(names) for module, names in dists.items()
               if not names & (install_requires | CODEBASE_DISTS)}
    assert not missing, f'imported by mmdeploy but not in install_requires: {missing} (importers: ' \
                        f'{ {m: imported[m][:3] for m in missing} })'


def test_every_install_requires_entry_is_imported_by_mmdeploy(install_requires):
    modules = set()
    for root, _, files in os.walk(os.path.join(REPO, 'mmdeploy')):
        for name in files:
            if name.endswith('.py'):
                with open(os.path.join(root, name), encoding='utf-8') as f:
                    tree = ast.parse(f.read())
                for node in ast.walk(tree):
                    if isinstance(node, ast.Import):
                        modules.update(a.name.partition('.')[0] for a in node.names)
                    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                        modules.add(node.module.partition('.')[0])
    used = set().union(*_dists_of(modules).values())
    unused = install_requires - used
    assert not unused, f'install_requires lists distributions mmdeploy never imports: {sorted(unused)}'


def _pins(name):
    pins = {}
    with open(os.path.join(REPO, 'requirements', name), encoding='utf-8') as f:
        for line in f:
            line = line.split('#')[0].strip()
            if '==' in line:
                package, _, version = line.partition('==')
                pins[_norm(package)] = version.strip()
    return pins


@pytest.mark.parametrize('name', ['runtime.txt', 'codebases.txt', 'tests.txt'])
def test_requirement_pins_agree_with_constraints(name):
    constraints = _pins('constraints.txt')
    pins = _pins(name)
    assert pins, f'{name} pins nothing'
    disagree = {p: (v, constraints.get(p)) for p, v in pins.items() if p in constraints and constraints[p] != v}
    assert not disagree, f'{name} and constraints.txt disagree (pin, constraint): {disagree}'
