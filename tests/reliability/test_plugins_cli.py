"""Bullet 4: ``mmdeploy plugins`` shows a broken third-party plugin as FAILED, by name, and keeps
working (exit 0, the built-ins still listed). The plugins are real throwaway modules installed
through a dist-info with an ``mmdeploy`` entry point, found on PYTHONPATH by a subprocess."""
from __future__ import annotations

import os
import subprocess
import textwrap

from conftest import MMDEPLOY


def _install(site, dist, module, source, entry_name=None):
    (site / f'{module}.py').write_text(textwrap.dedent(source))
    info = site / f'{dist}-0.1.dist-info'
    info.mkdir()
    (info / 'METADATA').write_text(f'Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n')
    (info / 'entry_points.txt').write_text(f'[mmdeploy]\n{entry_name or module} = {module}\n')


def test_plugins_cli_shows_broken_plugins_as_failed(tmp_path):
    site = tmp_path / 'site'
    site.mkdir()
    _install(site, 'relbroken-import', 'relbroken_import', 'raise RuntimeError("boom at import")\n')
    _install(site, 'relbroken-hook', 'relbroken_hook', '''
        from mmdeploy.hookspecs import hookimpl

        @hookimpl
        def mmdeploy_backends(register):
            raise ValueError("boom in hook")
        ''')
    _install(site, 'relgood', 'relgood', '''
        from mmdeploy.hookspecs import hookimpl

        @hookimpl
        def mmdeploy_backends(register):
            register("relgood_backend", object, requires=("relgood_runtime_not_installed",))
        ''')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(site), os.environ.get('PYTHONPATH')])))
    env.pop('MMDEPLOY_DISABLE_PLUGIN_AUTOLOAD', None)
    env.pop('MMDEPLOY_BLOCK_PLUGINS', None)
    proc = subprocess.run([MMDEPLOY, 'plugins'], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()

    def line_of(name):
        found = [line for line in lines if line.strip().startswith(name + ' ')]
        assert len(found) == 1, proc.stdout
        return found[0]

    broken_import = line_of('relbroken_import')
    assert 'relbroken-import 0.1' in broken_import and 'FAILED' in broken_import
    assert 'boom at import' in broken_import
    broken_hook = line_of('relbroken_hook')
    assert 'FAILED' in broken_hook and 'mmdeploy_backends' in broken_hook and 'boom in hook' in broken_hook
    good = line_of('relgood')
    assert 'FAILED' not in good and ' ok' in good
    assert 'relgood_backend (from relgood): unavailable: missing relgood_runtime_not_installed' in proc.stdout
    assert 'onnxruntime (from mmdeploy.backend.onnxruntime.plugin): available' in proc.stdout
    # each broken plugin is also named in a warning, and nothing crashed
    assert "'relbroken_import'" in proc.stderr and "'relbroken_hook'" in proc.stderr
    assert 'Traceback' not in proc.stderr
