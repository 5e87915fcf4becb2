"""The 'single_stage' partition, quickly (one small RetinaNet, TorchScript exporter, 160x160): in every run.

partition0.onnx (backbone, neck and head up to the NMS inputs) runs with
ONNX Runtime, the NMS in PyTorch (:class:`SingleStagePartitionModel`), and the
whole gives mmdet's detections: same count, labels equal, boxes within
``BOX_ATOL = 1e-2`` px and scores within ``SCORE_ATOL = 1e-4`` (float32 kernels
of two engines; measured ~1e-4 px and ~1e-6, as in test_one_stage_detectors.py,
whose partition tests over both exporters are marked slow).
"""
from __future__ import annotations

import onnx
import torch

from mmdeploy.apis.pytorch2onnx import build_task_processor, export_task_model, partition_onnx
from mmdeploy.apis.verify import match_detections
from mmdeploy.utils.config import load_config

from det_helpers import SPECS, detections, make_image, shrink_test_resize, spread_scores

CONFIG = 'configs/mmdet/detection/single-stage_partition_onnxruntime_static.py'
BOX_ATOL = 1e-2
SCORE_ATOL = 1e-4


def test_single_stage_partition_matches_pytorch(tmp_path):
    from mmdeploy.codebase.mmdet.one_stage.partition_model import SingleStagePartitionModel

    spec = SPECS[0]  # RetinaNet R-18
    model_cfg = load_config(spec.config)
    shrink_test_resize(model_cfg, (160, 160))
    model_cfg.model.test_cfg.score_thr = spec.score_thr
    deploy_cfg = load_config(CONFIG)
    deploy_cfg.onnx_config.exporter = 'torchscript'
    deploy_cfg.onnx_config.input_shape = [160, 160]
    task = build_task_processor(model_cfg, deploy_cfg)
    torch.manual_seed(0)
    model = task.build_pytorch_model()
    export_image, check_image = make_image(128, 160, seed=1), make_image(96, 160, seed=2)
    _, inputs = task.create_input(export_image, task.ir_input_shape(), model.data_preprocessor)
    spread_scores(model, inputs, spec.score_convs, spec.mean, spec.std)

    marked = export_task_model(task, model, export_image, str(tmp_path / 'end2end.onnx'))
    (part,) = partition_onnx(marked, deploy_cfg, str(tmp_path))
    graph = onnx.load(part).graph
    assert part.endswith('partition0.onnx') and [o.name for o in graph.output] == ['boxes', 'scores']
    assert 'NonMaxSuppression' not in {n.op_type for n in graph.node}  # the cut is before the NMS

    backend = task.build_backend_model([part])
    assert isinstance(backend, SingleStagePartitionModel)
    data = task.create_input(check_image, task.ir_input_shape())[0]
    (expected,) = detections(task.run_pytorch(model, data))
    (actual,) = detections(backend.test_step(task.create_input(check_image, task.ir_input_shape())[0]))
    assert 0 < len(expected[1]) == len(actual[1])
    match = match_detections(expected, actual, BOX_ATOL, SCORE_ATOL)
    assert not match.unpaired_expected and not match.unpaired_actual
    assert match.max_box_diff <= BOX_ATOL and match.max_score_diff <= SCORE_ATOL
