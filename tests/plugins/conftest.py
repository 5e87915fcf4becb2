"""Fixtures for plugin tests: a really installed toy plugin, and throwaway distributions.

A "distribution" here is a real ``*.dist-info`` directory with an
``entry_points.txt`` next to a plugin module, in a directory put on
``sys.path`` (what pip produces, minus the build), so
``importlib.metadata`` discovers it exactly like an installed package.
"""
import importlib
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

TOY_PLUGIN_SRC = Path(__file__).resolve().parents[1] / 'data' / 'toy_plugin'
ENV_SWITCHES = ('MMDEPLOY_DISABLE_PLUGIN_AUTOLOAD', 'MMDEPLOY_BLOCK_PLUGINS')


@pytest.fixture(autouse=True)
def _clean_plugin_env(monkeypatch):
    for name in ENV_SWITCHES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope='session')
def toy_plugin_site(tmp_path_factory):
    """A directory where ``tests/data/toy_plugin`` was installed by pip (--target)."""
    work = tmp_path_factory.mktemp('toy_plugin')
    src = work / 'src'
    shutil.copytree(TOY_PLUGIN_SRC, src)  # the build writes next to the sources
    site = work / 'site'
    cmd = [sys.executable, '-m', 'pip', 'install', '--quiet', '--no-deps', '--no-build-isolation',
           '--no-index', '--disable-pip-version-check', '--target', str(site), str(src)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (site / 'mmdeploy_toy_plugin.py').exists()
    return site


@pytest.fixture
def on_path(monkeypatch):
    """``on_path(directory)``: make it importable (and its distributions discoverable)."""
    added_modules = set()

    def add(directory):
        monkeypatch.syspath_prepend(str(directory))
        added_modules.update(p.stem for p in Path(directory).glob('*.py'))
        importlib.invalidate_caches()

    yield add
    for name in added_modules:
        sys.modules.pop(name, None)


@pytest.fixture
def make_dist(tmp_path):
    """``make_dist(dist_name, {ep_name: module_source})`` -> site directory.

    Each entry point ``ep_name`` points at a module ``<dist>_<ep_name>`` with the
    given source. Several calls share one site directory.
    """
    site = tmp_path / 'site'
    site.mkdir(exist_ok=True)

    def make(dist_name, plugins, version='1.0'):
        norm = dist_name.replace('-', '_')
        info = site / f'{norm}-{version}.dist-info'
        info.mkdir()
        (info / 'METADATA').write_text(f'Metadata-Version: 2.1\nName: {dist_name}\nVersion: {version}\n')
        lines = ['[mmdeploy]']
        for ep_name, source in plugins.items():
            module = f'{norm}_{ep_name}'
            (site / f'{module}.py').write_text(textwrap.dedent(source))
            lines.append(f'{ep_name} = {module}')
        (info / 'entry_points.txt').write_text('\n'.join(lines) + '\n')
        return site

    return make


def run_python(code, site=None, cwd=None):
    """Run ``code`` in a fresh interpreter; ``site`` is put on PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k not in ENV_SWITCHES}
    if site is not None:
        env['PYTHONPATH'] = os.pathsep.join(p for p in (str(site), env.get('PYTHONPATH')) if p)
    return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=120)


@pytest.fixture
def python():
    return run_python
