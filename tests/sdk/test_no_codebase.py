"""The SDK runs without the codebases: no mmpretrain / mmdet / mmcv / mmengine / mmseg / mmocr / mmagic
import, no ``mmdeploy.codebase.*`` module, and its plugins come through the SDK's own plugin manager."""
from __future__ import annotations


def test_isolated_run_imported_no_codebase(isolated_results):
    # the handles of the other tests ran in this process; the blocking was in force and nothing leaked
    assert {'mmpretrain', 'mmdet', 'mmcv', 'mmengine'} <= set(isolated_results['_blocked'])
    assert isolated_results['_blocked_failed'] == isolated_results['_blocked']
    assert isolated_results['_modules'] == []
    assert len(isolated_results['det']['single']) == 3


def test_sdk_plugin_manager_skips_codebase_plugins():
    from mmdeploy.plugins import DEFAULT_PLUGINS, PluginManager, SDK_SKIPPED_PLUGIN_PREFIX

    sdk_builtin = [p for p in DEFAULT_PLUGINS if not p.startswith(SDK_SKIPPED_PLUGIN_PREFIX)]
    assert 'mmdeploy.sdk.plugin' in sdk_builtin and len(sdk_builtin) < len(DEFAULT_PLUGINS)
    registry = PluginManager(builtin=sdk_builtin, entry_points=False).load_sdk_components()
    assert registry.codebases == {}
    assert 'onnxruntime' in registry.backends
    kinds = {kind for kind, _ in registry.sdk_components}
    assert kinds == {'transform', 'postprocess', 'handle'}
