"""The original MMDeploy's names: open enums, config readers, mmdet helpers, logger."""
import logging

import pytest
import torch


def test_backend_get_accepts_a_plugin_backend(compat_plugin):
    from mmdeploy.utils import Backend
    from mmdeploy.utils.constants import Backend as ConstBackend

    assert ConstBackend is Backend
    member = Backend.get('compat_engine')
    assert isinstance(member, Backend) and member == 'compat_engine' and member.value == 'compat_engine'
    assert Backend.COMPAT_ENGINE is member and member in list(Backend)
    assert Backend.get(member) is member and Backend('compat_engine') is member


def test_unknown_backend_is_a_clear_error():
    from mmdeploy.errors import MMDeployError
    from mmdeploy.utils import Backend

    with pytest.raises(MMDeployError, match=r"unknown backend 'no_such_engine'; known: .*onnxruntime") as info:
        Backend.get('no_such_engine')
    assert isinstance(info.value, KeyError)  # as the original's enum lookup
    with pytest.raises(AttributeError):
        Backend.NO_SUCH_ENGINE


def test_enum_members_are_their_strings():
    from mmdeploy.utils import IR, Backend, Codebase, Task
    from mmdeploy.utils.constants import TENSORRT_MAX_TOPK

    assert Backend.ONNXRUNTIME == 'onnxruntime' and Backend.ONNXRUNTIME.value == 'onnxruntime'
    assert {Backend.TENSORRT: 1}['tensorrt'] == 1 and f'{Backend.NCNN}' == 'ncnn'
    assert Codebase.MMDET.value == 'mmdet' and Task.OBJECT_DETECTION == 'ObjectDetection'
    assert Task.get('Classification') is Task.CLASSIFICATION and IR.ONNX == 'onnx'
    assert TENSORRT_MAX_TOPK == 3840
    from mmdeploy.core import IR as CoreIR

    assert CoreIR is IR


def test_config_readers():
    from mmdeploy.utils import (Backend, get_backend, get_codebase_config, get_common_config, get_dynamic_axes,
                                get_input_shape, get_ir_config, is_dynamic_batch, is_dynamic_shape, load_config)

    static = dict(onnx_config=dict(input_names=['input'], output_names=['dets'], input_shape=[320, 320]),
                  backend_config=dict(type='onnxruntime', common_config=dict(fp16_mode=False)),
                  codebase_config=dict(type='mmdet', task='ObjectDetection'))
    dynamic = dict(static, onnx_config=dict(input_names=['input'], output_names=['dets'],
                                            dynamic_axes=[[0, 2, 3], [0, 1]]))
    batch_only = dict(static, onnx_config=dict(input_names=['input'], dynamic_axes={'input': {0: 'batch'}}))
    backend = get_backend(static)
    assert backend is Backend.ONNXRUNTIME and backend == 'onnxruntime'
    assert get_codebase_config(static)['task'] == 'ObjectDetection'
    assert get_common_config(static) == {'fp16_mode': False}
    assert get_ir_config(static)['input_shape'] == [320, 320] and get_input_shape(static) == [320, 320]
    assert get_input_shape(dynamic) is None
    assert get_dynamic_axes(static) is None
    assert get_dynamic_axes(dynamic) == {'input': [0, 2, 3], 'dets': [0, 1]}
    assert (is_dynamic_shape(static), is_dynamic_batch(static)) == (False, False)
    assert (is_dynamic_shape(dynamic), is_dynamic_batch(dynamic)) == (True, True)
    assert (is_dynamic_shape(batch_only), is_dynamic_batch(batch_only)) == (False, True)
    deploy_cfg, other = load_config(static, dynamic)
    assert deploy_cfg.onnx_config.input_shape == [320, 320] and 'dynamic_axes' in other.onnx_config


def test_get_root_logger(tmp_path):
    from mmdeploy.utils import get_root_logger

    logger = get_root_logger(log_file=str(tmp_path / 'log.txt'), log_level=logging.INFO)
    try:
        assert logger is logging.getLogger('mmdeploy') and logger.level == logging.INFO
        logger.info('hello from a ported rewrite')
        for handler in logger.handlers:
            handler.flush()
        assert 'hello from a ported rewrite' in (tmp_path / 'log.txt').read_text()
    finally:
        for handler in [h for h in logger.handlers if getattr(h, 'baseFilename', '').startswith(str(tmp_path))]:
            logger.removeHandler(handler)
            handler.close()
        logger.setLevel(logging.NOTSET)


def test_mmdet_deploy_helpers():
    from mmdeploy.codebase.mmdet.deploy import clip_bboxes, gather_topk, get_post_processing_params

    params = get_post_processing_params(dict(codebase_config=dict(post_processing=dict(keep_top_k=7))))
    assert params['keep_top_k'] == 7 and params['iou_threshold'] == 0.5
    scores = torch.arange(2 * 5 * 3, dtype=torch.float32).reshape(2, 5, 3)
    priors = torch.arange(5 * 4, dtype=torch.float32).reshape(1, 5, 4)
    inds = torch.tensor([[4, 0], [1, 3]])
    picked, none = gather_topk(scores, None, inds=inds, batch_size=2)
    assert none is None and picked.shape == (2, 2, 3)
    assert torch.equal(picked[0, 0], scores[0, 4]) and torch.equal(picked[1, 1], scores[1, 3])
    (picked_priors,) = gather_topk(priors, inds=inds, batch_size=2, is_batched=False)
    assert torch.equal(picked_priors[1, 0], priors[0, 1])
    x1, y1, x2, y2 = clip_bboxes(torch.tensor([-5.0, 3.0]), torch.tensor([2.0, -1.0]), torch.tensor([50.0, 9.0]),
                                 torch.tensor([8.0, 40.0]), (30, 20))
    assert x1.tolist() == [0.0, 3.0] and y1.tolist() == [2.0, 0.0]
    assert x2.tolist() == [20.0, 9.0] and y2.tolist() == [8.0, 30.0]


def test_codebase_base_names():
    from mmdeploy.codebase.base import CODEBASE, BaseBackendModel, BaseTask, MMCodebase
    from mmdeploy.mmcv.ops import multiclass_nms
    from mmdeploy.utils import Codebase, Task

    class MyTask(BaseTask):
        pass

    @CODEBASE.register_module(Codebase.MMSEG.value)
    class MySeg(MMCodebase):
        task_registry = {Task.SEGMENTATION.value: MyTask}

    try:
        assert CODEBASE.get(Codebase.MMSEG) is MySeg
        assert MySeg.get_task_class(Task.SEGMENTATION) is MyTask
        processor = MySeg.build_task_processor({}, dict(codebase_config=dict(type='mmseg', task='Segmentation')),
                                               'cpu')
        assert isinstance(processor, MyTask)
    finally:
        CODEBASE.module_dict.pop('mmseg', None)
    assert callable(multiclass_nms) and hasattr(BaseBackendModel, '_build_wrapper')


def test_plugin_backend_member_selects_rewrites(compat_plugin):
    """A plugin backend's member works as ``backend=`` of a rewrite and of a RewriterContext."""
    from mmdeploy.core import RewriterContext
    from mmdeploy.core.rewriters import RewriterManager
    from mmdeploy.utils import Backend

    manager = RewriterManager()

    @manager.function.register_rewriter('mmdeploy_compat_toy.models.soft_gate',
                                        backend=Backend.get('compat_engine'))
    def gate_off(x, gate):
        return x

    x, gate = torch.ones(3), torch.zeros(3)
    with RewriterContext(backend=Backend.COMPAT_ENGINE, rewriter_manager=manager):
        assert torch.equal(compat_plugin.soft_gate(x, gate), x)
    with RewriterContext(backend=Backend.ONNXRUNTIME, rewriter_manager=manager):
        assert torch.equal(compat_plugin.soft_gate(x, gate), x * 0.5)
