"""Device handling of `--device cuda`, the parts that run without a GPU.

A CUDA session reads a bound input address as memory of its own GPU: CPU
tensors must be copied there first, CUDA outputs must be copied back before
numpy reads them, and the PyTorch reference must not run in TF32. The real
GPU runs are in tests/gpu/ (skipped without a GPU).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mmdeploy.backend.onnxruntime import wrapper as ort_wrapper
from mmdeploy.backend.onnxruntime.wrapper import ORTWrapper, session_torch_device, to_session_device
from mmdeploy.codebase.base.device import exact_fp32, host_array, on_backend_device
from mmdeploy.errors import BackendUnavailableError


def test_session_device_index():
    assert session_torch_device('cuda') == torch.device('cuda', 0)
    assert session_torch_device('cuda:1') == torch.device('cuda', 1)


def test_tensor_already_there_is_bound_as_is():
    tensor = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    assert to_session_device(tensor, torch.device('cpu')).data_ptr() == tensor.data_ptr()


def test_tensor_elsewhere_is_copied():
    # the meta device stands in for the GPU: a CPU tensor must end up on the target device
    moved = to_session_device(torch.ones(2, 3), torch.device('meta'))
    assert moved.device.type == 'meta' and moved.shape == (2, 3)


class _FakeBinding:
    def __init__(self, outputs):
        self.inputs, self.outputs = [], outputs

    def bind_input(self, name, device_type, device_id, dtype, shape, pointer):
        self.inputs.append((name, device_type, device_id, np.dtype(dtype), list(shape), pointer))

    def bind_output(self, name, device_type, device_id):
        pass

    def get_outputs(self):
        return self.outputs


class _FakeSession:
    """An ORT session on 'the GPU' that records what is bound."""

    def __init__(self):
        self.binding = _FakeBinding([torch.zeros(2, 10)])
        self.ran = False

    def io_binding(self):
        return self.binding

    def run_with_iobinding(self, binding):
        self.ran = True

    def get_providers(self):
        return ['CUDAExecutionProvider', 'CPUExecutionProvider']


def _cuda_wrapper_on_fake_session(monkeypatch):
    class _Stream:
        def synchronize(self):
            pass

    class _Meta:
        name, type, shape = 'input', 'tensor(float)', ['batch', 3, 8, 8]

    # the meta device plays the session's GPU; no CUDA call is made
    monkeypatch.setattr(ort_wrapper, 'session_torch_device', lambda device: torch.device('meta'))
    monkeypatch.setattr(torch.cuda, 'current_stream', lambda device=None: _Stream())
    wrapper = ORTWrapper.__new__(ORTWrapper)
    wrapper.session, wrapper.device = _FakeSession(), 'cuda:0'
    wrapper._inputs, wrapper.input_names, wrapper.output_names = {'input': _Meta()}, ['input'], ['output']
    wrapper._use_io_binding = True
    return wrapper


def test_cpu_tensor_given_to_cuda_session_is_not_bound_as_device_memory(monkeypatch):
    wrapper = _cuda_wrapper_on_fake_session(monkeypatch)
    cpu_input = torch.randn(2, 3, 8, 8)
    outputs = wrapper({'input': cpu_input})
    (name, device_type, _, dtype, shape, pointer), = wrapper.session.binding.inputs
    assert wrapper.session.ran and (name, device_type, dtype, shape) == ('input', 'cuda', np.float32, [2, 3, 8, 8])
    # the host address of the CPU tensor must never reach the GPU session
    assert pointer != cpu_input.data_ptr()
    assert outputs['output'].shape == (2, 10)


def test_numpy_input_on_cuda_session_with_torch_neighbours_is_bound_too(monkeypatch):
    wrapper = _cuda_wrapper_on_fake_session(monkeypatch)
    wrapper._inputs['mask'] = wrapper._inputs['input']
    wrapper.input_names.append('mask')
    array = np.zeros((1, 3, 8, 8), np.float32)
    wrapper({'input': torch.zeros(1, 3, 8, 8), 'mask': array})
    pointers = [entry[-1] for entry in wrapper.session.binding.inputs]
    assert len(pointers) == 2 and array.ctypes.data not in pointers


def test_cuda_asked_but_provider_failed_to_load(monkeypatch, tmp_path):
    # ORT falls back to the CPU (with a log line) when its CUDA provider cannot load its libraries
    import onnxruntime

    class _FallbackSession:
        def __init__(self, path, options, providers):
            self.asked = providers

        def get_providers(self):
            return ['CPUExecutionProvider']

    model = tmp_path / 'm.onnx'
    model.write_bytes(b'not read by the fake session')
    monkeypatch.setattr(onnxruntime, 'get_available_providers',
                        lambda: ['CUDAExecutionProvider', 'CPUExecutionProvider'])
    monkeypatch.setattr(onnxruntime, 'InferenceSession', _FallbackSession)
    with pytest.raises(BackendUnavailableError, match="CUDA provider failed to load.*--device cpu"):
        ORTWrapper(str(model), device='cuda')


def test_cuda_session_asks_for_float32_not_tf32(monkeypatch):
    import onnxruntime

    monkeypatch.setattr(onnxruntime, 'get_available_providers',
                        lambda: ['CUDAExecutionProvider', 'CPUExecutionProvider'])
    monkeypatch.setattr(onnxruntime, 'preload_dlls', lambda *a, **k: None, raising=False)
    (name, options), cpu = ort_wrapper._providers_for('cuda:1', None)
    assert (name, options['device_id'], options['use_tf32'], cpu) == ('CUDAExecutionProvider', 1, 0,
                                                                        'CPUExecutionProvider')


def test_exact_fp32_on_cuda_only_and_restored():
    conv = torch.backends.cudnn.conv
    before = conv.fp32_precision
    with exact_fp32('cpu'):
        assert conv.fp32_precision == before
    with exact_fp32('cuda:0'):
        assert conv.fp32_precision == 'ieee' and torch.backends.cuda.matmul.fp32_precision == 'ieee'
    assert conv.fp32_precision == before


def test_preprocessor_follows_the_backend_device():
    class _Wrapper:
        device = 'meta'

    module = torch.nn.Linear(2, 2)
    assert next(on_backend_device(module, _Wrapper()).parameters()).device.type == 'meta'
    assert next(on_backend_device(torch.nn.Linear(2, 2), object()).parameters()).device.type == 'cpu'


def test_host_array_reads_tensors_through_cpu():
    class _DeviceTensor:  # what np.asarray cannot read: only .cpu() gives host memory
        def detach(self):
            return self

        def cpu(self):
            return torch.tensor([1.0, 2.0])

        def __array__(self, *args, **kwargs):
            raise TypeError("can't convert cuda:0 device type tensor to numpy")

    assert host_array(_DeviceTensor()).tolist() == [1.0, 2.0]
    assert host_array([[1, 2]]).shape == (1, 2)
