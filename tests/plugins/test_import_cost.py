"""``import mmdeploy`` stays cheap: no torch, no plugin, well under a second."""
import json

HEAVY = ('torch', 'onnx', 'onnxruntime', 'onnxscript', 'mmengine', 'mmcv', 'mmdet', 'mmpretrain',
         'numpy')

IMPORT_MMDEPLOY = '''
import json, sys, time
start = time.perf_counter()
import mmdeploy
elapsed = time.perf_counter() - start
loaded = set(sys.modules)
from mmdeploy.plugins import DEFAULT_PLUGINS
print(json.dumps({'seconds': elapsed,
                  'heavy': sorted(m for m in loaded if m.split('.')[0] in %r),
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


def test_import_mmdeploy_is_cheap(toy_plugin_site, python, tmp_path, capsys):
    result = python(IMPORT_MMDEPLOY, site=toy_plugin_site, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert report['heavy'] == [], report['heavy']
    assert report['plugins'] == [], report['plugins']
    with capsys.disabled():
        print(f"\n[import mmdeploy took {report['seconds'] * 1000:.1f} ms in a fresh interpreter]")
    assert report['seconds'] < 1.0


def test_loading_plugins_imports_nothing_heavy(toy_plugin_site, python, tmp_path):
    """Plugins register factories; torch, engines and codebases wait until used."""
    result = python(LOAD_PLUGINS, site=toy_plugin_site, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert 'toy_engine' in report['plugins']
    assert report['heavy'] == [], report['heavy']
