"""The 'two_stage' partition of Faster R-CNN: two sub-models chained give the end-to-end result.

partition0 (backbone, neck, RPN up to its NMS inputs) and partition1 (box
head on RoI features) run with ONNX Runtime; the RPN's NMS, the RoI
extraction and the R-CNN decoding / NMS run in PyTorch between and after
them (:class:`TwoStagePartitionModel`). Compared with the end-to-end graph of
the same export (marks removed) and with mmdet's PyTorch model.

Tolerances as in test_two_stage_detectors.py: boxes 0.01 px, scores 1e-4,
labels and counts equal (the glue code computes in float32 what the graph
computes; measured differences are float32 rounding).
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

BOX_ATOL = 1e-2
SCORE_ATOL = 1e-4
CONFIG = 'configs/mmdet/detection/two-stage_partition_onnxruntime_static.py'


def _rows(dets, labels):
    keep = dets[:, 4] > 0
    return dets[keep, :4], dets[keep, 4], labels[keep]


@pytest.mark.slow
@pytest.mark.parametrize('exporter', ['dynamo', 'torchscript'])
def test_partitions_chain_to_end2end(tmp_path, two_stage, exporter):
    from mmdeploy.apis.onnx.passes import remove_marks
    from mmdeploy.apis.pytorch2onnx import build_task_processor, export_task_model, partition_onnx
    from mmdeploy.codebase.mmdet.two_stage.partition_model import TwoStagePartitionModel
    from mmdeploy.plugins import get_backend_manager
    from mmdeploy.utils.config import load_config

    deploy_cfg = load_config(CONFIG)
    deploy_cfg.onnx_config.exporter = exporter
    model_cfg = two_stage.model_cfg('faster_rcnn')
    task = build_task_processor(model_cfg, deploy_cfg)
    torch.manual_seed(0)
    model = two_stage.spread_scores(task.build_pytorch_model())
    image = two_stage.random_image(640, 640, seed=0)
    data, tensor = task.create_input([image], task.ir_input_shape(), model.data_preprocessor)

    marked = export_task_model(task, model, image, str(tmp_path / 'end2end.onnx'))
    files = partition_onnx(marked, deploy_cfg, str(tmp_path))
    assert [f.rsplit('/', 1)[-1] for f in files] == ['partition0.onnx', 'partition1.onnx']
    part0, part1 = (onnx.load(f).graph for f in files)
    assert [i.name for i in part0.input] == ['input']
    assert [o.name for o in part0.output] == [f'feat.{i}' for i in range(5)] + ['boxes', 'scores']
    assert [i.name for i in part1.input] == ['bbox_feats']
    assert [o.name for o in part1.output] == ['cls_score', 'bbox_pred']
    # the cuts are where they should be: no NMS or RoiAlign inside, the RPN's NMS is outside
    assert not {'NonMaxSuppression', 'RoiAlign'} & {n.op_type for n in part0.node}
    assert {n.op_type for n in part1.node} <= {'Flatten', 'Reshape', 'Gemm', 'Relu', 'MatMul', 'Add'}

    full = onnx.load(marked)
    remove_marks(full)
    end2end = str(tmp_path / 'unmarked.onnx')
    onnx.save(full, end2end)

    manager = get_backend_manager('onnxruntime')
    e2e_out = manager.build_wrapper([end2end], 'cpu', deploy_cfg)({'input': tensor})
    chained = task.build_backend_model(files)  # the task picks the partition runner
    assert isinstance(chained, TwoStagePartitionModel)
    chain_out = chained.forward_raw(tensor)

    expected = _rows(np.asarray(e2e_out['dets'])[0], np.asarray(e2e_out['labels'])[0])
    actual = _rows(chain_out['dets'][0], chain_out['labels'][0])
    assert len(expected[1]) > 0
    two_stage.match(expected, actual, BOX_ATOL, SCORE_ATOL)

    # and, as a whole, the partitioned model gives PyTorch's detections
    reference = task.run_pytorch(model, data)[0].pred_instances
    result = chained.test_step(data)[0].pred_instances
    two_stage.match((reference.bboxes.numpy(), reference.scores.numpy(), reference.labels.numpy()),
                    (result.bboxes.numpy(), result.scores.numpy(), result.labels.numpy()), BOX_ATOL, SCORE_ATOL)


def test_two_stage_partition_is_a_copy_per_caller():
    """What the partition step gets cannot be changed by another caller of get_partition_cfg."""
    from mmdeploy.codebase.mmdet.detection import ObjectDetection

    parts = ObjectDetection.get_partition_cfg('two_stage')
    parts[1]['start'] = ['changed:output']
    parts.pop(0)
    again = ObjectDetection.get_partition_cfg('two_stage')
    assert [p['save_file'] for p in again] == ['partition0.onnx', 'partition1.onnx']
    assert again[1]['start'] == ['roi_extractor:output']
