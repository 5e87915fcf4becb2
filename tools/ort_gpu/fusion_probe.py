"""Does cuDNN's fused convolution + bias + (add +) ReLU make ResNet-50 batch 32 faster on this GPU?

AOTInductor (frozen) calls cuDNN for each convolution and a Triton kernel after it for the ReLU or the residual
add + ReLU: each activation is written, read and written again. ``torch.cudnn_convolution_relu`` and
``torch.cudnn_convolution_add_relu`` do that in the convolution's epilogue. This probe times, on a plain-torch
ResNet-50 (random weights, batch norm folded, float16, channels-last; no OpenMMLab package, nothing of mmdeploy
but the fused ops' shape functions):

- ``eager``: convolution, then ReLU / add + ReLU (what AOTInductor's graph does, in PyTorch's own kernels)
- ``fused``: the two fused cuDNN ops
- ``torchscript``: ``torch.jit.freeze`` + ``optimize_for_inference`` (its CUDA pass fuses the same way)
- ``aoti``: AOTInductor frozen, and ``aoti fused``: the fused ops inside an AOTInductor package (with
  ``mmdeploy.backend.aot_inductor.cudnn_fusion``'s shape functions, so that torch.export can trace them)

each replayed from a CUDA graph, median of 200 calls, with the largest difference from ``eager`` in float32.

Usage: python3 tools/ort_gpu/fusion_probe.py [BATCH] [--no-aoti]
"""
import os
import statistics
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from mmdeploy.backend.aot_inductor.cudnn_fusion import register_shape_functions  # noqa: E402 (imports torch only)


def folded_resnet50(device: str, dtype: torch.dtype) -> list:
    """ResNet-50's convolutions with batch norm folded in: a list of stages of (conv, stride) tuples."""
    torch.manual_seed(0)

    def conv(cin: int, cout: int, k: int, gain: float = 2.0) -> tuple:
        w = torch.randn(cout, cin, k, k, device=device) * (gain / (cin * k * k)) ** 0.5
        b = torch.randn(cout, device=device) * 0.1
        return w.to(dtype).contiguous(memory_format=torch.channels_last), b.to(dtype)

    blocks, cin = [], 64
    for width, count, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        for i in range(count):
            s = stride if i == 0 else 1
            down = conv(cin, width * 4, 1) if i == 0 else None
            blocks.append(dict(c1=conv(cin, width, 1), c2=conv(width, width, 3), c3=conv(width, width * 4, 1, 0.2),
                               stride=s, down=down))
            cin = width * 4
    fc_w = (torch.randn(1000, 2048, device=device) * 0.02).to(dtype)
    return [conv(3, 64, 7), blocks, fc_w]


class Net(torch.nn.Module):
    """The folded ResNet-50, with plain or fused convolution epilogues."""

    def __init__(self, params: list, fused: bool):
        super().__init__()
        stem, blocks, fc_w = params
        self.fused = fused
        self.blocks = blocks
        for i, block in enumerate(blocks):
            for key in ('c1', 'c2', 'c3', 'down'):
                if block[key] is not None:
                    self.register_buffer(f'w{i}{key}', block[key][0])
                    self.register_buffer(f'b{i}{key}', block[key][1])
        self.register_buffer('stem_w', stem[0])
        self.register_buffer('stem_b', stem[1])
        self.register_buffer('fc_w', fc_w)

    def conv_relu(self, x, w, b, stride, padding):
        if self.fused:
            return torch.cudnn_convolution_relu(x, w, b, [stride] * 2, [padding] * 2, [1, 1], 1)
        return F.relu(F.conv2d(x, w, b, stride, padding))

    def conv_add_relu(self, x, w, b, z):
        if self.fused:
            return torch.cudnn_convolution_add_relu(x, w, z, 1.0, b, [1, 1], [0, 0], [1, 1], 1)
        return F.relu(F.conv2d(x, w, b) + z)

    def forward(self, x):
        x = self.conv_relu(x, self.stem_w, self.stem_b, 2, 3)
        x = F.max_pool2d(x, 3, 2, 1)
        for i, block in enumerate(self.blocks):
            s = block['stride']
            identity = x
            if block['down'] is not None:
                identity = F.conv2d(x, getattr(self, f'w{i}down'), getattr(self, f'b{i}down'), s)
            y = self.conv_relu(x, getattr(self, f'w{i}c1'), getattr(self, f'b{i}c1'), 1, 0)
            y = self.conv_relu(y, getattr(self, f'w{i}c2'), getattr(self, f'b{i}c2'), s, 1)
            x = self.conv_add_relu(y, getattr(self, f'w{i}c3'), getattr(self, f'b{i}c3'), identity)
        return x.mean((2, 3)) @ self.fc_w.t()


def replay_time(fn, x, repeats: int = 200) -> tuple:
    """Median and p90 milliseconds of one CUDA-graph replay (with the synchronise), and the output."""
    static_x = x.clone()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn(static_x)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn(static_x)
    for _ in range(20):
        graph.replay()
    torch.cuda.synchronize()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        graph.replay()
        torch.cuda.synchronize()
        samples.append((time.perf_counter() - start) * 1e3)
    samples.sort()
    return statistics.median(samples), samples[int(0.9 * len(samples))], out.float().clone()


def main() -> None:
    batch = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 32
    aoti = '--no-aoti' not in sys.argv
    torch.backends.cudnn.benchmark = False
    print(torch.__version__, torch.version.cuda, 'cuDNN', torch.backends.cudnn.version(),
          torch.cuda.get_device_name(), 'batch', batch, flush=True)
    params = folded_resnet50('cuda', torch.half)
    x = torch.randn(batch, 3, 224, 224, device='cuda', dtype=torch.half).contiguous(memory_format=torch.channels_last)
    plain, fused = Net(params, False).eval(), Net(params, True).eval()
    sides = [('eager', plain), ('fused', fused)]
    with torch.no_grad():
        try:
            script = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(plain, x)))
            sides.append((f"torchscript ({str(script.graph).count('cudnn_convolution')} fused ops)", script))
        except Exception as error:  # noqa: BLE001 - a probe reports and goes on
            print('torchscript:', type(error).__name__, str(error)[:300], flush=True)
        # compiled before any CUDA graph is captured: Inductor's autotuning refuses to run after a capture
        # ("Offset increment outside graph capture", 2026-12-03)
        if aoti:
            register_shape_functions()
            folder = tempfile.mkdtemp()
            for label, net in (('aoti', plain), ('aoti fused', fused)):
                try:
                    started = time.perf_counter()
                    program = torch.export.export(net, (x,))
                    path = torch._inductor.aoti_compile_and_package(
                        program, package_path=os.path.join(folder, label.replace(' ', '_') + '.pt2'),
                        inductor_configs={'freezing': True})
                    runner = torch._inductor.aoti_load_package(path)
                    sides.append((f'{label} (compiled in {time.perf_counter() - started:.0f} s)', runner))
                except Exception as error:  # noqa: BLE001
                    print(f'{label}:', type(error).__name__, str(error)[:600], flush=True)
        rows = [(label,) + replay_time(fn, x) for label, fn in sides]
    reference = rows[0][3]
    print('| side | median | p90 | max abs diff vs eager (fp16) |\n|---|---|---|---|')
    for label, median, p90, out in rows:
        print(f'| {label} | {median:.3f} ms | {p90:.3f} ms | {float((out - reference).abs().max()):.2e} |',
              flush=True)


if __name__ == '__main__':
    main()
