"""The AOTInductor backend: the rewritten model exported with torch.export, compiled into a .pt2 package for the
CPU, loaded with aoti_load_package and compared with PyTorch.

Compiling generates and builds C++: ResNet-18 at 64x64 takes 30 s on this 2-core CPU when it is quiet (empty
Inductor cache), 100 s under load; RetinaNet R-18 ~170 s under load. The default suite compiles one model
(ResNet-18, static 64x64, float32); the rest is marked extended. Ids say [dynamo]: torch.export records the program (the
rewrites' dynamo branch).

Float32: Inductor's generated kernels fuse and reorder sums, so features move by float32 rounding: probabilities
within 1e-4 (the tiny classifier: 1.5e-8 measured), boxes within 1e-2 px and scores within 1e-4 (RetinaNet:
1.5e-5 px, 1.6e-6 measured), labels
and the number of detections exactly. BF16 / FP16 (``backend_config.precision``): weights and activations
carry 8 (bf16) or 11 (fp16) significant bits, errors add up over ResNet-18's layers: probabilities within 0.05
(bf16) / 0.01 (fp16), the class picked PyTorch's top-1 or within that of it, and they must differ from float32
visibly (the dtype applied).
"""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'torchscript'))
from native_helpers import (assert_bad_files_refused, assert_detections_match, assert_resnet18_matches,  # noqa: E402
                            class_scores, config, export, make_image, resnet18_case, retinanet, run_both)

PROB_ATOL = 1e-4
BOX_ATOL = 1e-2
SCORE_ATOL = 1e-4
LOW_PRECISION_ATOL = {'BF16': 5e-2, 'FP16': 1e-2}
CLS_STATIC = 'mmpretrain/classification_aot_inductor_static.py'
CLS_DYNAMIC = 'mmpretrain/classification_aot_inductor_dynamic.py'
DET_STATIC = 'mmdet/detection/detection_aot_inductor_static.py'


@pytest.fixture(scope='module')
def r18_static(tmp_path_factory):
    """ResNet-18 compiled at 64x64 in float32 (the one compilation of the default suite)."""
    return resnet18_case(CLS_STATIC, tmp_path_factory.mktemp('aoti-r18'), onnx_config__input_shape=[64, 64])


def test_resnet18_static_matches_pytorch_dynamo(r18_static):
    """[dynamo] float32, 64x64; the package is what deploy writes (end2end.pt2) and loads on the CPU."""
    task, model, files, _ = r18_static
    assert [os.path.basename(p) for p in files] == ['end2end.pt2']
    assert_resnet18_matches(task, model, files, PROB_ATOL)


def test_wrapper_checks_inputs_and_files(r18_static, tmp_path):
    from mmdeploy.backend.aot_inductor.manager import AOTInductorManager
    from mmdeploy.errors import InputDataError

    task, _, files, _ = r18_static
    assert_bad_files_refused(AOTInductorManager, '.pt2', task.deploy_cfg, tmp_path)
    with AOTInductorManager.build_wrapper(files, 'cpu', task.deploy_cfg) as wrapper:
        assert wrapper({'input': np.zeros((1, 3, 64, 64), np.float32)})['output'].shape == (1, 1000)
        with pytest.raises(InputDataError, match='float32'):
            wrapper({'input': np.zeros((1, 3, 64, 64), np.float64)})
        with pytest.raises(InputDataError, match='fixed size 64 on axis 2'):  # compiled for 64x64 only
            wrapper({'input': np.zeros((1, 3, 96, 96), np.float32)})


def test_precision_key_is_validated():
    from mmdeploy.utils.deploy_config import deploy_config_problems

    problems = deploy_config_problems(config(CLS_STATIC, backend_config__precision='INT8'))
    assert any('precision' in p and 'BF16' in p for p in problems), problems
    assert deploy_config_problems(config(CLS_STATIC, backend_config__precision='bf16')) == []


@pytest.mark.extended
def test_resnet18_dynamic_batch_and_size_dynamo(tmp_path):
    """[dynamo] one package for batch 2 at two sizes (the example's batch of 1 stays dynamic)."""
    task, model, files, image = resnet18_case(CLS_DYNAMIC, tmp_path)
    images = [image, np.ascontiguousarray(255 - image[:, ::-1])]
    for size in ((64, 64), (96, 80)):
        expected, actual = run_both(task, model, files, images, size)
        np.testing.assert_allclose(class_scores(task, actual), class_scores(task, expected), atol=PROB_ATOL, rtol=0)


@pytest.mark.extended
@pytest.mark.parametrize('precision', ['BF16', 'FP16'])
def test_resnet18_low_precision_close_to_pytorch_dynamo(r18_static, precision, tmp_path):
    """[dynamo] the model compiled in bf16 / fp16, float32 in and out; looser (see the module docstring)."""
    task32, model, _, image = r18_static
    task, _, files, _ = resnet18_case(CLS_STATIC, tmp_path, onnx_config__input_shape=[64, 64],
                                       backend_config__precision=precision)
    check = [make_image(70, 90, seed=4)]
    expected, actual = run_both(task, model, files, check, task.ir_input_shape())
    expected, actual = class_scores(task, expected), class_scores(task, actual)
    diff = np.abs(actual - expected).max()
    assert 1e-4 < diff <= LOW_PRECISION_ATOL[precision], diff
    # the class picked is PyTorch's top-1 or one within the tolerance of it (1000 classes: near ties happen;
    # measured bf16: class 258 picked where PyTorch's top-1 is 522, within 0.05)
    picked = expected[np.arange(len(expected)), actual.argmax(1)]
    assert (picked >= expected.max(1) - LOW_PRECISION_ATOL[precision]).all()


@pytest.mark.extended
def test_retinanet_static_matches_pytorch_dynamo(tmp_path):
    """[dynamo] RetinaNet R-18 at 320x320 with NMS as mmdeploy's torch op inside the package."""
    image = make_image(256, 320, seed=1)
    task, model = retinanet(config(DET_STATIC), tmp_path, image)
    files = export(task, model, image, tmp_path)
    expected, actual = run_both(task, model, files, [make_image(192, 320, seed=2)], task.ir_input_shape())
    matched, _, _ = assert_detections_match(expected, actual, BOX_ATOL, SCORE_ATOL)
    assert matched >= 3


def test_inductor_and_cuda_graph_keys_are_validated_and_passed_on(r18_static):
    """``freezing`` / ``max_autotune`` / ``coordinate_descent_tuning`` reach Inductor's options; ``cuda_graph``
    off CUDA is refused by name."""
    from mmdeploy.backend.aot_inductor.manager import AOTInductorManager, inductor_options
    from mmdeploy.errors import ConfigError
    from mmdeploy.utils.deploy_config import deploy_config_problems

    cfg = config(CLS_STATIC, backend_config__freezing=True, backend_config__max_autotune=False,
                 backend_config__coordinate_descent_tuning=True, backend_config__cuda_graph=True)
    assert deploy_config_problems(cfg) == []
    assert inductor_options(cfg) == {'freezing': True, 'max_autotune': False, 'coordinate_descent_tuning': True}
    assert inductor_options(config(CLS_STATIC)) == {}
    problems = deploy_config_problems(config(CLS_STATIC, backend_config__freezing='yes'))
    assert any('freezing' in p for p in problems), problems
    problems = deploy_config_problems(config(CLS_STATIC, backend_config__coordinate_descent_tuning=1))
    assert any('coordinate_descent_tuning' in p for p in problems), problems
    _, _, files, _ = r18_static
    with pytest.raises(ConfigError, match="cuda_graph needs device 'cuda'"):
        AOTInductorManager.build_wrapper(files, 'cpu', cfg)


@pytest.mark.extended
def test_resnet18_frozen_matches_pytorch_dynamo(r18_static, tmp_path):
    """[dynamo] ``freezing=True``: weights folded into the package as constants; float32 as without it."""
    task, model, _, _ = r18_static
    task, _, files, _ = resnet18_case(CLS_STATIC, tmp_path, onnx_config__input_shape=[64, 64],
                                       backend_config__freezing=True)
    assert_resnet18_matches(task, model, files, PROB_ATOL)


def test_package_load_check_in_a_child_process(r18_static, tmp_path, monkeypatch):
    """The load check (run after compiling on CUDA) passes a good package and names why a bad one fails: a file
    that is no package, and a child that dies of a signal (the crash seen on a GPU machine with another CXX)."""
    import signal

    from mmdeploy.backend.aot_inductor import manager
    from mmdeploy.errors import ExportError

    _, _, files, _ = r18_static
    manager.check_package_loads(files[0], 'cpu')
    bad = tmp_path / 'broken.pt2'
    bad.write_bytes(b'not a zip archive')
    with pytest.raises(ExportError, match='does not load in a fresh process: .*Error'):
        manager.check_package_loads(str(bad), 'cpu')
    monkeypatch.setattr(manager, '_LOAD_CHECK', f'import os\nos.kill(os.getpid(), {int(signal.SIGSEGV)})\n')
    with pytest.raises(ExportError, match=r"crashed with SIGSEGV .*set CXX to the system compiler"):
        manager.check_package_loads(files[0], 'cpu')
    assert 'killed by signal 99' in manager.load_failure(-99, '', 'g++')
