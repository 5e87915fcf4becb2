"""Run mmdeploy's default path (deploy an mmpretrain model on ONNX Runtime) and print, as JSON, every
top-level module that mmdeploy's own code imported: ``{module: [importing mmdeploy modules]}``.

Usage: python install_requires_probe.py MODEL_CFG IMAGE WORK_DIR
"""
import builtins
import json
import sys

seen = {}
_real_import = builtins.__import__


def _tracking_import(name, globals=None, locals=None, fromlist=(), level=0):
    importer = (globals or {}).get('__name__') or ''
    if level == 0 and (importer == 'mmdeploy' or importer.startswith('mmdeploy.')):
        seen.setdefault(name.partition('.')[0], set()).add(importer)
    return _real_import(name, globals, locals, fromlist, level)


builtins.__import__ = _tracking_import

from mmdeploy.apis.deploy import deploy  # noqa: E402

model_cfg, image, work_dir = sys.argv[1:4]
deploy('configs/mmpretrain/classification_onnxruntime_dynamic.py', model_cfg, image, work_dir,
       show_progress=False)
print(json.dumps({name: sorted(importers) for name, importers in sorted(seen.items())}))
