"""The TorchScript backend: the rewritten model traced with torch.jit.trace, run on the CPU, compared with PyTorch.

ResNet-18 (mmpretrain's config, random weights, fc scaled so probabilities spread) at 64x64 and RetinaNet R-18
(mmdet's config, score convs redrawn so that it detects; images fit 320x320). The traced program runs the same
ATen kernels as PyTorch; torch.jit.freeze folds batch norms into the convolutions, which moves float32 results
by rounding only (RetinaNet: boxes 1.5e-5 px, scores 1.3e-6 measured), so probabilities must agree within 1e-5,
boxes within 1e-3 px and scores within 1e-5 (detections matched by deploy's rule: same label, closest unused
counterpart), labels and the number of detections exactly. Ids say [torchscript]: torch.jit.trace records the
program (the rewrites' TorchScript branch).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from native_helpers import (assert_bad_files_refused, assert_detections_match, assert_resnet18_matches,
                            class_scores, config, export, make_image, resnet18_case, retinanet, run_both)

PROB_ATOL = 1e-5
BOX_ATOL = 1e-3
SCORE_ATOL = 1e-5
CLS_STATIC = 'mmpretrain/classification_torchscript_static.py'
CLS_DYNAMIC = 'mmpretrain/classification_torchscript_dynamic.py'
DET_STATIC = 'mmdet/detection/detection_torchscript_static.py'
DET_DYNAMIC = 'mmdet/detection/detection_torchscript_dynamic.py'


@pytest.fixture(scope='module')
def r18_dynamic(tmp_path_factory):
    """ResNet-18 traced with the dynamic config (batch, height and width free)."""
    return resnet18_case(CLS_DYNAMIC, tmp_path_factory.mktemp('ts-r18'))


def test_resnet18_static_matches_pytorch_torchscript(tmp_path):
    """[torchscript] 64x64, the deploy config's fixed input size."""
    task, model, files, _ = resnet18_case(CLS_STATIC, tmp_path, onnx_config__input_shape=[64, 64])
    assert [p.rsplit('/', 1)[1] for p in files] == ['end2end.pt']
    assert_resnet18_matches(task, model, files, PROB_ATOL)
    from mmdeploy.backend.torchscript.manager import TorchScriptManager
    from mmdeploy.errors import InputDataError

    with TorchScriptManager.build_wrapper(files, 'cpu', task.deploy_cfg) as wrapper:
        with pytest.raises(InputDataError, match='fixed size 64 on axis 2'):  # traced at 64x64 only
            wrapper({'input': np.zeros((1, 3, 96, 64), np.float32)})


@pytest.mark.parametrize('size', [(64, 64), (96, 80)], ids=['64x64', '96x80'])
def test_resnet18_dynamic_batch_and_size_torchscript(r18_dynamic, size):
    """[torchscript] batch 2 at two sizes: the sizes the model reads were traced as operations, not constants."""
    task, model, files, image = r18_dynamic
    images = [image, np.ascontiguousarray(255 - image[:, ::-1])]
    expected, actual = run_both(task, model, files, images, size)
    expected, actual = class_scores(task, expected), class_scores(task, actual)
    assert not np.allclose(expected[0], expected[1], atol=1e-3)  # two different answers to get right
    np.testing.assert_allclose(actual, expected, atol=PROB_ATOL, rtol=0)


@pytest.mark.parametrize('rel', [DET_STATIC, pytest.param(DET_DYNAMIC, marks=pytest.mark.extended)],
                         ids=['static', 'dynamic'])
def test_retinanet_matches_pytorch_torchscript(rel, tmp_path):
    """[torchscript] RetinaNet R-18: the rewritten head with NMS as mmdeploy's torch op, traced; batch 2 when dynamic.

    The dynamic case is extended: tests/e2e/test_shipped_configs.py deploys detection_torchscript_dynamic.py with
    RetinaNet (second shape: batch 2 at another size) in the default suite.
    """
    image = make_image(256, 320, seed=1)
    task, model = retinanet(config(rel), tmp_path, image)
    files = export(task, model, image, tmp_path)
    images = [image] if rel == DET_STATIC else [image, make_image(224, 288, seed=5)]
    expected, actual = run_both(task, model, files, images, task.ir_input_shape())
    matched, _, _ = assert_detections_match(expected, actual, BOX_ATOL, SCORE_ATOL)
    assert matched >= 3


def test_wrapper_checks_inputs_and_files(r18_dynamic, tmp_path):
    from mmdeploy.backend.torchscript.manager import TorchScriptManager
    from mmdeploy.errors import InputDataError

    task, _, files, _ = r18_dynamic
    assert_bad_files_refused(TorchScriptManager, '.pt', task.deploy_cfg, tmp_path)
    wrapper = TorchScriptManager.build_wrapper(files, 'cpu', task.deploy_cfg)
    out = wrapper({'input': np.zeros((1, 3, 32, 32), np.float32)})
    assert isinstance(out['output'], np.ndarray) and out['output'].shape == (1, 1000)
    assert isinstance(wrapper({'input': torch.zeros(1, 3, 32, 32)})['output'], torch.Tensor)
    with pytest.raises(InputDataError, match='float32'):
        wrapper({'input': np.zeros((1, 3, 32, 32), np.float64)})
    with pytest.raises(InputDataError, match='rank 4'):
        wrapper({'input': np.zeros((3, 32, 32), np.float32)})
    with pytest.raises(InputDataError, match='missing'):
        wrapper({'image': np.zeros((1, 3, 32, 32), np.float32)})
    wrapper.close()
    with pytest.raises(InputDataError, match='closed'):
        wrapper({'input': np.zeros((1, 3, 32, 32), np.float32)})


def test_onnx_paths_are_refused_with_the_fix(r18_dynamic, tmp_path):
    """ONNX files cannot be given to a PyTorch-native backend; a partition (cuts ONNX graphs) is refused too."""
    from mmdeploy.apis.backend import onnx2backend
    from mmdeploy.apis.pytorch2backend import export_task_model_to_backend
    from mmdeploy.errors import ConfigError

    task, model, _, image = r18_dynamic
    onnx_file = tmp_path / 'net.onnx'
    torch.onnx.export(torch.nn.Linear(2, 2), torch.zeros(1, 2), str(onnx_file), dynamo=False)
    with pytest.raises(ConfigError, match='torch2backend'):
        onnx2backend(str(onnx_file), 'torchscript', config(CLS_DYNAMIC), str(tmp_path))
    cfg = config(CLS_DYNAMIC)
    cfg['partition_config'] = dict(type='custom', apply_marks=True,
                                   partition_cfg=[dict(save_file='p.onnx', start=['a:input'], end=['b:output'])])
    task.deploy_cfg = cfg
    try:
        with pytest.raises(ConfigError, match='partition_config'):
            export_task_model_to_backend(task, model, image, str(tmp_path))
    finally:
        task.deploy_cfg = config(CLS_DYNAMIC)


def test_cuda_graph_key_is_validated_and_refused_off_cuda(r18_dynamic):
    """``cuda_graph`` is a declared key; on the CPU (and with dynamic axes) the wrapper refuses it by name."""
    from mmdeploy.backend.torchscript.manager import TorchScriptManager
    from mmdeploy.backend.torchscript.runtime import cuda_graph_of
    from mmdeploy.errors import ConfigError
    from mmdeploy.utils.deploy_config import deploy_config_problems

    cfg = config(CLS_DYNAMIC, backend_config__cuda_graph=True)
    assert deploy_config_problems(cfg) == []
    assert any('cuda_graph' in p for p in deploy_config_problems(config(CLS_DYNAMIC, backend_config__cuda_graph=1)))
    assert cuda_graph_of(cfg, 'cuda') is True and cuda_graph_of(config(CLS_DYNAMIC), 'cpu') is False
    _, _, files, _ = r18_dynamic
    with pytest.raises(ConfigError, match="cuda_graph needs device 'cuda'"):
        TorchScriptManager.build_wrapper(files, 'cpu', cfg)


def test_cudnn_benchmark_is_on_during_calls_only(r18_dynamic):
    """``cudnn_benchmark``: a declared key; the program runs with cuDNN's flag on, which is restored after the call
    (also when the program fails); the results are the program's own."""
    from mmdeploy.backend.torchscript.manager import TorchScriptManager
    from mmdeploy.backend.torchscript.runtime import CudnnBenchmarked
    from mmdeploy.utils.deploy_config import deploy_config_problems

    cfg = config(CLS_DYNAMIC, backend_config__cudnn_benchmark=True)
    assert deploy_config_problems(cfg) == []
    assert any('cudnn_benchmark' in p
               for p in deploy_config_problems(config(CLS_DYNAMIC, backend_config__cudnn_benchmark='on')))
    seen = []

    def program(x):
        seen.append(torch.backends.cudnn.benchmark)
        if x is None:
            raise RuntimeError('failed inside')
        return x + 1

    flag = torch.backends.cudnn.benchmark
    benchmarked = CudnnBenchmarked(program)
    assert benchmarked(torch.ones(1)).item() == 2.0
    with pytest.raises(RuntimeError, match='failed inside'):
        benchmarked(None)
    assert seen == [True, True] and torch.backends.cudnn.benchmark is flag
    _, _, files, _ = r18_dynamic
    feed = {'input': np.random.default_rng(0).random((1, 3, 64, 64), dtype=np.float32)}
    with TorchScriptManager.build_wrapper(files, 'cpu', cfg) as wrapper, \
            TorchScriptManager.build_wrapper(files, 'cpu', config(CLS_DYNAMIC)) as plain:
        assert isinstance(wrapper.program, CudnnBenchmarked)
        np.testing.assert_array_equal(wrapper(feed)['output'], plain(feed)['output'])
