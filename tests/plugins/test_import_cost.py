"""``import mmdeploy`` stays cheap: it imports no torch, no engine, no codebase and no plugin.

What it costs in time depends on the machine and its load; ``python tools/benchmark_import.py``
measures it.
"""
import json

HEAVY = ('torch', 'onnx', 'onnxruntime', 'onnxscript', 'mmengine', 'mmcv', 'mmdet', 'mmpretrain',
         'numpy')

IMPORT_MMDEPLOY = '''
import json, sys
import mmdeploy
loaded = set(sys.modules)
from mmdeploy.plugins import DEFAULT_PLUGINS
print(json.dumps({'heavy': sorted(m for m in loaded if m.split('.')[0] in %r),
                  'plugins': sorted(m for m in loaded
                                    if m in DEFAULT_PLUGINS or m == 'mmdeploy_toy_plugin')}))
''' % (HEAVY,)

LOAD_PLUGINS = '''
import json, sys
from mmdeploy.plugins import get_registry
registry = get_registry()
print(json.dumps({'heavy': sorted(m for m in sys.modules if m.split('.')[0] in %r),
                  'plugins': sorted(registry.plugins)}))
''' % (HEAVY,)


def test_import_mmdeploy_imports_nothing_heavy(toy_plugin_site, python, tmp_path):
    """With a third-party plugin installed, ``import mmdeploy`` loads neither it nor torch & co."""
    result = python(IMPORT_MMDEPLOY, site=toy_plugin_site, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert report['heavy'] == [], report['heavy']
    assert report['plugins'] == [], report['plugins']


def test_loading_plugins_imports_nothing_heavy(toy_plugin_site, python, tmp_path):
    """Plugins register factories; torch, engines and codebases wait until used."""
    result = python(LOAD_PLUGINS, site=toy_plugin_site, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert 'toy_engine' in report['plugins']
    assert report['heavy'] == [], report['heavy']
