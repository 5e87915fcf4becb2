"""Shared pieces of the OpenVINO tests: deploy configs with a precision, models exported once, comparisons.

The other test folders' helpers (``tests/mmdet/det_helpers.py``, ``tests/e2e/deploy_models.py``) are put on
``sys.path`` here, so the detector tests build the same small models as the ONNX Runtime tests.
"""
from __future__ import annotations

import os
import sys

TESTS = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REPO = os.path.dirname(TESTS)
for _path in (TESTS, os.path.join(TESTS, 'mmdet')):
    if _path not in sys.path:
        sys.path.append(_path)

CLS_STATIC = os.path.join(REPO, 'configs/mmpretrain/classification_openvino_static.py')
CLS_DYNAMIC = os.path.join(REPO, 'configs/mmpretrain/classification_openvino_dynamic.py')
DET_STATIC = os.path.join(REPO, 'configs/mmdet/detection/detection_openvino_static.py')


def deploy_cfg(path: str, exporter: str = 'dynamo', **backend):
    """The deploy config at ``path`` with ``onnx_config.exporter`` and extra ``backend_config`` keys set."""
    from mmdeploy.utils.config import load_config

    cfg = load_config(path)
    cfg.onnx_config.exporter = exporter
    cfg.backend_config.update(backend)
    return cfg


def cpu_has_bf16() -> bool:
    """OpenVINO's CPU plugin offers bf16 arithmetic here (avx512_bf16 / AMX)."""
    import openvino as ov

    return 'BF16' in ov.Core().get_property('CPU', 'OPTIMIZATION_CAPABILITIES')
