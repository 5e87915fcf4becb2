"""Shared fixtures of the reliability suite (bad input, faults, concurrency, fuzz, memory)."""
from __future__ import annotations

import os
import sys
from typing import Dict, Tuple

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CONFIGS = os.path.join(REPO, 'configs', 'mmpretrain')
DYNAMIC_PY = os.path.join(CONFIGS, 'classification_onnxruntime_dynamic.py')
DYNAMIC_JSON = os.path.join(CONFIGS, 'classification_onnxruntime_dynamic.json')
STATIC_PY = os.path.join(CONFIGS, 'classification_onnxruntime_static.py')
STATIC_YAML = os.path.join(CONFIGS, 'classification_onnxruntime_static.yaml')
TINY_MODEL = os.path.join(HERE, 'configs', 'tiny_classifier.py')
RESNET18 = 'mmpretrain::resnet/resnet18_8xb32_in1k.py'
MMDEPLOY = os.path.join(os.path.dirname(sys.executable), 'mmdeploy')

if HERE not in sys.path:  # reliability_toys is imported by dotted name (rewrite targets)
    sys.path.insert(0, HERE)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line('markers', 'slow: takes more than ~20 s; still run in CI')


def snapshot(folder: str) -> Dict[str, Tuple[int, bytes]]:
    """Every file under ``folder`` (hidden ones too): relative path -> (mode, content)."""
    state = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            path = os.path.join(root, name)
            state[os.path.relpath(path, folder) + '/'] = (os.stat(path).st_mode, b'')
        for name in files:
            path = os.path.join(root, name)
            with open(path, 'rb') as f:
                state[os.path.relpath(path, folder)] = (os.stat(path).st_mode, f.read())
    return state


@pytest.fixture(scope='session')
def image_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    import cv2

    path = str(tmp_path_factory.mktemp('img') / 'random.png')
    cv2.imwrite(path, np.random.RandomState(0).randint(0, 256, (48, 64, 3), dtype=np.uint8))
    return path


@pytest.fixture
def populated_work_dir(tmp_path) -> str:
    """A work dir holding a sentinel and a stale artefact that a failed run must not touch."""
    work_dir = tmp_path / 'work'
    work_dir.mkdir()
    (work_dir / 'sentinel.txt').write_text('keep me\n')
    (work_dir / 'end2end.onnx').write_bytes(b'previous run, must survive a failed one')
    (work_dir / 'sub').mkdir()
    (work_dir / 'sub' / 'notes.md').write_text('nested\n')
    return str(work_dir)
