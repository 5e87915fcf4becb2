"""Shared by the segmentation / editing / OCR handle tests: deploy a folder, run the converter's backend
model on it, and run SDK handles in a subprocess where the codebases cannot be imported."""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
#: packages the SDK must do without: importing them fails in the SDK's subprocess
BLOCKED = ('mmseg', 'mmagic', 'mmocr', 'mmcv', 'mmengine', 'mmpretrain', 'mmdet')

_SCRIPT = textwrap.dedent('''
    import pickle, sys
    for name in {blocked!r}:
        sys.modules[name] = None  # "import name" now raises ImportError
    import numpy as np
    import mmdeploy.sdk as sdk

    with open({spec!r}, 'rb') as f:
        cases = pickle.load(f)
    results = []
    for case in cases:
        cls = getattr(sdk, case['handle'])
        with cls(*case['dirs']) as handle:
            results.append([handle(image) for image in case['images']]
                           + ([handle(case['images'])] if case.get('batch') else []))
    leaked = sorted(m for m in sys.modules if m.startswith('mmdeploy.codebase') or
                    (m.split('.')[0] in {blocked!r} and sys.modules[m] is not None))
    with open({out!r}, 'wb') as f:
        pickle.dump(dict(results=results, leaked=leaked), f)
''')


def run_sdk_isolated(cases: List[Dict[str, Any]], folder: str) -> List[List[Any]]:
    """Run SDK handles in a fresh Python where importing any of :data:`BLOCKED` fails.

    Each case: ``handle`` (a name in :mod:`mmdeploy.sdk`), ``dirs`` (its
    constructor's folders), ``images`` (called one at a time) and ``batch``
    (also called once on the whole list). Returns each case's results (the
    batch call's list last). Fails when a codebase or ``mmdeploy.codebase``
    module was imported.
    """
    spec, out = os.path.join(folder, 'sdk_cases.pkl'), os.path.join(folder, 'sdk_results.pkl')
    with open(spec, 'wb') as f:
        pickle.dump(cases, f)
    script = _SCRIPT.format(blocked=BLOCKED, spec=spec, out=out)
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
    proc = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-4000:]
    with open(out, 'rb') as f:
        done = pickle.load(f)
    assert done['leaked'] == [], f'the SDK imported {done["leaked"]}'
    return done['results']


def deploy_folder(deploy_cfg: str, model_cfg: str, image: np.ndarray, work_dir: str,
                  checkpoint: Optional[str] = None, extra: str = '') -> str:
    """Deploy (TorchScript exporter, no verification or pictures: the tests compare themselves).

    ``extra``: deploy config lines appended to a copy of ``deploy_cfg``.
    """
    import cv2

    from mmdeploy.apis.deploy import deploy

    os.makedirs(os.path.dirname(work_dir), exist_ok=True)
    if extra:
        copy = work_dir + '_deploy_cfg.py'
        with open(copy, 'w') as f:
            f.write(f'_base_ = [{os.path.abspath(deploy_cfg)!r}]\n{extra}\n')
        deploy_cfg = copy
    image_path = work_dir + '_trace.png'
    cv2.imwrite(image_path, image)
    deploy(deploy_cfg, model_cfg, image_path, work_dir, model_checkpoint=checkpoint, device='cpu',
           show_progress=False, visualize=False, verify=False, exporter='torchscript')
    return work_dir


def converter_model(work_dir: str, model_cfg: str) -> Any:
    """The converter's backend model of a deployed folder, built from the folder's own meta (mmocr's
    ``DeployedModel``, generic over codebases): ``model(images)`` gives the codebase's data samples."""
    from mmdeploy.codebase.mmocr.ocr_pair import DeployedModel

    return DeployedModel(work_dir, model_cfg)


def converter_results(work_dir: str, model_cfg: str, images: Sequence[np.ndarray],
                      batch: Sequence[np.ndarray] = (), model: Any = None) -> Any:
    """The converter's data samples for ``images``, one image at a time; with ``batch``: ``(those, the
    batch's)``. ``model``: a :func:`converter_model` already built."""
    model = model or converter_model(work_dir, model_cfg)
    singles = [model([image])[0] for image in images]
    return (singles, model(list(batch))) if len(batch) else singles
