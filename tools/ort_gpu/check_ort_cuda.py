"""Check mmdeploy's ONNX Runtime wrapper on CUDA (io-binding with torch CUDA tensors) against torch.

Run on a machine with a GPU and onnxruntime-gpu (see tools/ort_gpu/README.md). Prints the max abs
difference between ORT CUDA and torch CUDA outputs, and median latencies (ms) of both.
"""
import os
import statistics
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def small_convnet() -> torch.nn.Module:
    """A ResNet-like stack of convs, deterministic from a seed."""
    torch.manual_seed(0)
    layers = [torch.nn.Conv2d(3, 32, 3, 2, 1), torch.nn.BatchNorm2d(32), torch.nn.ReLU()]
    for _ in range(6):
        layers += [torch.nn.Conv2d(32, 32, 3, 1, 1), torch.nn.BatchNorm2d(32), torch.nn.ReLU()]
    layers += [torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(32, 10)]
    return torch.nn.Sequential(*layers).eval()


def median_ms(fn, repeats: int = 50, warmup: int = 10) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    import onnxruntime

    if hasattr(onnxruntime, 'preload_dlls'):
        onnxruntime.preload_dlls()
    from mmdeploy.backend.onnxruntime.wrapper import ORTWrapper

    print('onnxruntime', onnxruntime.__version__, onnxruntime.get_available_providers())
    model = small_convnet()
    x = torch.randn(4, 3, 224, 224)
    path = os.path.join(tempfile.mkdtemp(), 'convnet.onnx')
    torch.onnx.export(model, (x,), path, dynamo=False, input_names=['input'], output_names=['output'],
                      dynamic_axes={'input': {0: 'batch'}}, opset_version=17)
    wrapper = ORTWrapper(path, device='cuda:0')
    print('session providers', wrapper.session.get_providers())
    model_cuda, x_cuda = model.cuda(), x.cuda()
    out = wrapper({'input': x_cuda})['output']
    with torch.no_grad():
        ref = model_cuda(x_cuda)
    print('output device', out.device, 'shape', tuple(out.shape))
    print('max abs diff ORT CUDA vs torch CUDA: %.3g' % (out - ref).abs().max().item())
    with torch.no_grad():
        t_torch = median_ms(lambda: model_cuda(x_cuda))
    t_ort = median_ms(lambda: wrapper({'input': x_cuda}))
    print('| batch 4, 224x224 | torch eager CUDA %.2f ms | ORT CUDA io-binding %.2f ms |' % (t_torch, t_ort))


if __name__ == '__main__':
    main()
