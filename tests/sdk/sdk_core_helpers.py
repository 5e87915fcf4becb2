"""Helpers of the SDK core tests: deploy a folder with the converter's APIs, run SDK handles isolated."""
from __future__ import annotations

import os
import textwrap

#: the exporter the shared folders are made with (the faster one here; the SDK reads either's files)
EXPORTER = 'torchscript'


def deploy_folder(work_dir: str, deploy_cfg: str, model_cfg: str, img: str, checkpoint: str = None) -> str:
    """Export ``model_cfg`` (``checkpoint``, else random weights, seeded) for ONNX Runtime into ``work_dir``
    with its SDK meta."""
    import torch

    from mmdeploy.apis import onnx2backend, torch2onnx
    from mmdeploy.apis.sdk_meta import export2SDK

    os.makedirs(work_dir, exist_ok=True)
    torch.manual_seed(0)
    onnx_file = torch2onnx(img, work_dir, 'end2end.onnx', deploy_cfg, model_cfg, checkpoint)
    files = onnx2backend(onnx_file, 'onnxruntime', deploy_cfg, work_dir)
    export2SDK(deploy_cfg, model_cfg, work_dir, checkpoint, backend_files=files)
    return work_dir


def write_text(path, text: str) -> str:
    """Write the dedented ``text`` to ``path``; return the path as a string."""
    path.write_text(textwrap.dedent(text))
    return str(path)


#: what the SDK must do without: importing these fails in the subprocess that runs the handles
BLOCKED = ('mmpretrain', 'mmdet', 'mmcv', 'mmengine', 'mmseg', 'mmocr', 'mmagic')

_ISOLATED = '''
import json, pickle, sys
for name in {blocked!r}:
    sys.modules[name] = None  # "import name" raises ImportError from now on
import cv2
import mmdeploy.sdk as sdk

cases = json.loads({cases!r})
out = {{}}
for key, case in cases.items():
    images = [cv2.imread(p) for p in case['images']]
    with getattr(sdk, case['handle'])(case['dir']) as handle:
        out[key] = {{'single': [handle(img) for img in images], 'batch': handle(images)}}
blocked_failed = []
for name in {blocked!r}:
    try:
        __import__(name)
    except ImportError:
        blocked_failed.append(name)
out['_modules'] = sorted(m for m in sys.modules if m.startswith('mmdeploy.codebase') or
                         m.split('.')[0] in {blocked!r} and sys.modules[m] is not None)
out['_blocked_failed'] = blocked_failed
out['_blocked'] = list({blocked!r})
with open({out_file!r}, 'wb') as f:
    pickle.dump(out, f)
'''


def run_isolated(cases: dict, out_file: str) -> dict:
    """Run SDK handles in a fresh Python where importing any of :data:`BLOCKED` fails.

    ``cases``: ``{key: {'handle': class name in mmdeploy.sdk, 'dir': folder, 'images': [paths]}}``;
    returns ``{key: {'single': [result per image], 'batch': [results of one list call]}}`` plus
    ``_modules`` (codebase modules that ended up imported: must be none) and ``_blocked_failed``.
    """
    import json
    import pickle
    import subprocess
    import sys

    script = _ISOLATED.format(blocked=BLOCKED, cases=json.dumps(cases), out_file=out_file)
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=repo + os.pathsep + os.environ.get('PYTHONPATH', ''))
    proc = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, env=env, cwd=repo)
    assert proc.returncode == 0, proc.stderr[-4000:]
    with open(out_file, 'rb') as f:
        return pickle.load(f)
