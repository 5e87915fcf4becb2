"""ncnn backend: mmdet detectors cut for ncnn, converted by pnnx, run, and compared with PyTorch.

ncnn has no TopK / NonMaxSuppression / GatherElements layers, so the graph is
cut where the dense head's raw maps come out (partition ``single_stage_head``);
mmdet's own ``predict_by_feat`` decodes, selects and suppresses on them in
PyTorch (:class:`~mmdeploy.codebase.mmdet.one_stage.head_partition_model.HeadPartitionModel`).

RetinaNet-R18 at 320x320, random weights with the score convs redrawn so that
scores spread over (0, 1) (:func:`det_helpers.spread_scores`); the check image
differs from the export image. Tolerances as the ONNX Runtime detection tests
(tests/mmdet/test_one_stage_detectors.py): both sides run the same float32
network with different kernels; the head maps differ by ~5e-7 (measured), which
the box decoding turns into well under 1e-3 px. ``BOX_ATOL = 1e-2`` px and
``SCORE_ATOL = 1e-4``; labels must be equal and every detection matched.

Two-stage (Faster R-CNN): the ``two_stage_head`` cut runs backbone, FPN and
RPN head (partition0) and the box head (partition1) on ncnn, mmdet's RPN and
R-CNN post-processing in PyTorch. The ``two_stage`` partition0 cannot go to
ncnn: it holds the RPN's ``nms_pre`` TopK, which pnnx cannot convert (its ONNX
pass drops TopK's indices output and onnxruntime then refuses the graph), and
ncnn has no TopK layer; conversion is refused naming the file and the cut to use.
"""
from __future__ import annotations

import collections
import os
import sys

import onnx
import pytest
import torch

from mmdeploy.apis import onnx2backend
from mmdeploy.apis.pytorch2onnx import build_task_processor, export_task_model, partition_onnx
from mmdeploy.apis.verify import match_detections
from mmdeploy.errors import UnsupportedModelError
from mmdeploy.utils.config import load_config

pytest.importorskip('ncnn')
pytest.importorskip('pnnx')
sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', '..', 'mmdet'))
from det_helpers import detections, make_image, spread_scores  # noqa: E402

DEPLOY_CFG = 'configs/mmdet/detection/detection_ncnn_static.py'
RETINANET = 'mmdet::retinanet/retinanet_r18_fpn_1x_coco.py'
BOX_ATOL = 1e-2  # px
SCORE_ATOL = 1e-4
EXPORT_IMAGE = make_image(256, 320, seed=1)
CHECK_IMAGE = make_image(192, 320, seed=2)


@pytest.fixture(scope='module')
def retinanet(tmp_path_factory):
    """[dynamo] (task, model, partition files, ncnn files) of RetinaNet-R18 cut after the head."""
    model_cfg = load_config(RETINANET)
    model_cfg.model.test_cfg.score_thr = 0.3
    task = build_task_processor(model_cfg, load_config(DEPLOY_CFG))
    torch.manual_seed(0)
    model = task.build_pytorch_model()
    _, inputs = task.create_input(EXPORT_IMAGE, task.ir_input_shape(), model.data_preprocessor)
    spread_scores(model, inputs, (r'retina_cls',), -8, 1.5)
    work = tmp_path_factory.mktemp('retinanet')
    onnx_file = export_task_model(task, model, EXPORT_IMAGE, str(work / 'end2end.onnx'))
    parts = partition_onnx(onnx_file, task.deploy_cfg, str(work))
    files = onnx2backend(parts, 'ncnn', task.deploy_cfg, str(work))
    return task, model, parts, files


def test_partition_ends_at_the_head_maps(retinanet):
    """[dynamo] partition0 holds no op ncnn lacks, and returns the 5 levels of both head outputs."""
    _, _, parts, files = retinanet
    graph = onnx.load(parts[0]).graph
    ops = collections.Counter(node.op_type for node in graph.node)
    assert not {'TopK', 'NonMaxSuppression', 'GatherElements', 'Where'} & set(ops), ops
    assert [o.name for o in graph.output] == [f'head.{i}.{level}' for i in range(2) for level in range(5)]
    assert [os.path.basename(f) for f in files] == ['partition0.param', 'partition0.bin']


def test_retinanet_fp32_detections_match_pytorch(retinanet):
    """[dynamo] Same detections as mmdet's eager test_step: labels equal, boxes / scores within tolerance."""
    task, model, _, files = retinanet
    shape = task.ir_input_shape()
    expected = detections(task.run_pytorch(model, task.create_input(CHECK_IMAGE, shape)[0]))[0]
    backend = task.build_backend_model(files)
    actual = detections(backend.test_step(task.create_input(CHECK_IMAGE, shape)[0]))[0]
    assert 5 < len(expected[2]) < 100, f'{len(expected[2])} detections: the test needs some, fewer than max_per_img'
    assert len(actual[2]) == len(expected[2])
    result = match_detections(expected, actual, BOX_ATOL, SCORE_ATOL)
    assert not result.unpaired_expected and not result.unpaired_actual
    assert result.max_box_diff <= BOX_ATOL and result.max_score_diff <= SCORE_ATOL


def _spread_two_stage_scores(model, std=0.5):
    """RPN and R-CNN classifiers redrawn (seeded, std 0.5; mmdet's 0.01 gives near-uniform scores): detections exist."""
    generator = torch.Generator().manual_seed(0)
    for module in model.modules():
        for name in ('rpn_cls', 'fc_cls'):
            layer = getattr(module, name, None)
            if layer is not None:
                layer.weight.data = torch.randn(layer.weight.shape, generator=generator) * std


@pytest.mark.slow
def test_faster_rcnn_two_stage_head_partition(tmp_path):
    """[dynamo] Faster R-CNN-R18 through the 'two_stage_head' cut: PyTorch's detections; 'two_stage' is refused.

    partition0 (backbone, FPN, RPN head maps) and partition1 (the box head at
    the exported 300 RoIs) run on ncnn; mmdet's RPN decoding / NMS, RoI
    extraction and R-CNN decoding / NMS run in PyTorch. Same tolerances as
    RetinaNet. The 'two_stage' partition0 holds the RPN's nms_pre TopK, which
    pnnx cannot convert: refused naming the file.
    """
    from mmdeploy.apis.onnx.partition import extract_partition
    from mmdeploy.plugins import get_partition

    cfg = load_config('configs/mmdet/detection/two-stage_partition_ncnn_static.py')
    model_cfg = load_config('mmdet::faster_rcnn/faster-rcnn_r18_fpn_8xb8-amp-lsj-200e_coco.py')
    model_cfg.model.test_cfg.rpn.max_per_img = 300
    model_cfg.model.test_cfg.rcnn.score_thr = 0.3
    task = build_task_processor(model_cfg, cfg)
    torch.manual_seed(0)
    model = task.build_pytorch_model()
    _spread_two_stage_scores(model)
    onnx_file = export_task_model(task, model, EXPORT_IMAGE, str(tmp_path / 'end2end.onnx'))
    files = onnx2backend(partition_onnx(onnx_file, cfg, str(tmp_path)), 'ncnn', cfg, str(tmp_path))
    assert [os.path.basename(f) for f in files] == ['partition0.param', 'partition0.bin', 'partition1.param',
                                                    'partition1.bin']
    shape = task.ir_input_shape()
    expected = detections(task.run_pytorch(model, task.create_input(CHECK_IMAGE, shape)[0]))[0]
    backend = task.build_backend_model(files)
    assert backend.rois_per_run == 300
    actual = detections(backend.test_step(task.create_input(CHECK_IMAGE, shape)[0]))[0]
    assert 0 < len(expected[2]) < 100, f'{len(expected[2])} detections: the test needs some'
    result = match_detections(expected, actual, BOX_ATOL, SCORE_ATOL)
    assert not result.unpaired_expected and not result.unpaired_actual
    assert result.max_box_diff <= BOX_ATOL and result.max_score_diff <= SCORE_ATOL

    first = get_partition('mmdet', 'two_stage')[0]
    part0 = extract_partition(onnx.load(onnx_file), first['start'], first['end'], first.get('dynamic_axes'))
    onnx.save(part0, str(tmp_path / 'rpn_nms.onnx'))
    with pytest.raises(UnsupportedModelError, match="pnnx could not convert 'rpn_nms.onnx'"):
        onnx2backend(str(tmp_path / 'rpn_nms.onnx'), 'ncnn', cfg, str(tmp_path / 'refused'))
