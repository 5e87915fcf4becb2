"""Models the plugins cannot export: `mmdeploy deploy` ends with one `error:` line, never a traceback.

Configs straight from the codebases' own folders that mmdeploy does not support
(yet): a transformer detector, segmentation-style instance heads (their raw maps
must never come out as dets / labels / masks), heads that decode their own way,
a classifier head that predicts its own way. The line names the class (and
method) and what to do; exit status 1; the work dir is not created.
"""
from __future__ import annotations

import pytest

from mmdeploy.cli import main

DET = 'configs/mmdet/detection/detection_onnxruntime_static.py'
SEG = 'configs/mmdet/instance-seg/instance-seg_onnxruntime_static.py'
CLS = 'configs/mmpretrain/classification_onnxruntime_static.py'

CASES = [
    pytest.param(DET, 'mmdet::dab_detr/dab-detr_r50_8xb2-50e_coco.py',
                 ['DABDETR cannot be exported', 'pre_decoder'], id='dab-detr'),  # Deformable DETR / DINO are supported
    pytest.param(SEG, 'mmdet::solo/solo_r50_fpn_1x_coco.py', ['SOLO cannot be exported'],
                 id='solo'),  # SOLOv2 is supported (tests/mmdet/test_solov2.py), SOLO v1 is not
    pytest.param(DET, 'mmdet::paa/paa_r50_fpn_1x_coco.py',
                 ['PAAHead cannot be exported', 'PAAHead.predict_by_feat'], id='paa'),
    pytest.param(CLS, 'mmpretrain::conformer/conformer-tiny-p16_8xb128_in1k.py',
                 ['ConformerHead cannot be exported', 'ConformerHead.predict'], id='conformer'),
]


@pytest.mark.parametrize('deploy_cfg,model_cfg,words', CASES)
def test_one_error_line_naming_the_class(tmp_path, capsys, deploy_cfg, model_cfg, words):
    work_dir = tmp_path / 'work'
    status = main(['deploy', deploy_cfg, model_cfg, '--img', 'demo/demo.png', '--work-dir', str(work_dir)])
    out, err = capsys.readouterr()
    assert status == 1
    errors = [line for line in (out + err).splitlines() if line.startswith('error:')]
    assert len(errors) == 1, errors
    for word in words:
        assert word in errors[0]
    assert 'plugin' in errors[0] and 'README' in errors[0]  # says what to do
    assert 'Traceback' not in out + err
    for internal in ('not allocated', "object has no attribute", 'KeyError'):
        assert internal not in errors[0]
    assert not work_dir.exists() or not any(work_dir.iterdir())
