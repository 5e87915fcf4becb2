"""Median latency of one-stage detectors: PyTorch eager vs ONNX Runtime on this CPU.

Both sides get the same preprocessed ``1x3xHxW`` tensor and the same number of
threads (``torch.set_num_threads`` == ONNX Runtime's ``intra_op_num_threads``)
and do the whole inference after preprocessing: backbone, neck, head, box
decoding and NMS (PyTorch: mmdet's ``predict``; ONNX Runtime: the end-to-end
graph mmdeploy exports). The two take turns call by call, so load from other
processes hits both alike. Random weights; with ``--busy-head`` the score convs'
biases are set to 0 so that every prior is a candidate (worst case for the
post-processing) instead of mmdet's prior bias, which leaves almost none.

Usage:
    python tools/benchmark_detection.py [--models retinanet yolox] [--threads N]
        [--repeats 30] [--warmup 5] [--size 640 640] [--exporter dynamo] [--busy-head]
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
import warnings
from typing import Callable, Dict, List, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: name -> (model config, regex of the head convs that produce scores)
MODELS: Dict[str, Tuple[str, str]] = {
    'retinanet': ('mmdet::retinanet/retinanet_r18_fpn_1x_coco.py', r'retina_cls'),
    'yolox': ('mmdet::yolox/yolox_tiny_8xb8-300e_coco.py', r'multi_level_conv_(cls|obj)\.\d'),
}


def measure(funcs: Dict[str, Callable[[], object]], repeats: int, warmup: int) -> Dict[str, List[float]]:
    """Seconds of ``repeats`` calls of each function after ``warmup`` untimed ones.

    The functions take turns, call by call, so that a change of load on the
    machine (other processes) affects all of them alike.
    """
    for _ in range(warmup):
        for func in funcs.values():
            func()
    times: Dict[str, List[float]] = {name: [] for name in funcs}
    for _ in range(repeats):
        for name, func in funcs.items():
            start = time.perf_counter()
            func()
            times[name].append(time.perf_counter() - start)
    return times


def benchmark(name: str, args: argparse.Namespace, work_dir: str) -> Dict[str, object]:
    """Export one model and time both sides; returns one table row."""
    import numpy as np
    import onnxruntime as ort
    import torch

    from mmdeploy.apis.pytorch2onnx import build_task_processor, export_task_model
    from mmdeploy.utils.config import load_config

    config, score_convs = MODELS[name]
    deploy_cfg = load_config('configs/mmdet/detection/detection_onnxruntime_static.py')
    deploy_cfg.onnx_config.input_shape = list(args.size)
    deploy_cfg.onnx_config.exporter = args.exporter
    task = build_task_processor(load_config(config), deploy_cfg)
    torch.manual_seed(0)
    model = task.build_pytorch_model()
    if args.busy_head:
        for module_name, module in model.bbox_head.named_modules():
            if isinstance(module, torch.nn.Conv2d) and re.fullmatch(score_convs, module_name):
                module.bias.data.zero_()
    image = (np.random.default_rng(0).random((args.size[1], args.size[0], 3)) * 255).astype(np.uint8)
    data, inputs = task.create_input(image, task.ir_input_shape(), model.data_preprocessor)
    onnx_file = export_task_model(task, model, image, os.path.join(work_dir, f'{name}.onnx'))

    torch.set_num_threads(args.threads)
    samples = data['data_samples']

    def run_torch() -> object:
        with torch.inference_mode():
            return model.predict(inputs, samples)

    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(onnx_file, options, providers=['CPUExecutionProvider'])
    feed = {session.get_inputs()[0].name: inputs.numpy()}

    def run_ort() -> object:
        return session.run(None, feed)

    times = measure({'torch': run_torch, 'ort': run_ort}, args.repeats, args.warmup)
    torch_times, ort_times = times['torch'], times['ort']
    detections_torch = len(run_torch()[0].pred_instances.scores)
    detections_ort = int((run_ort()[0][0, :, 4] > 0).sum())
    torch_ms, ort_ms = statistics.median(torch_times) * 1e3, statistics.median(ort_times) * 1e3
    return dict(model=name, shape='1x3x{}x{}'.format(args.size[1], args.size[0]), torch_ms=torch_ms, ort_ms=ort_ms,
                ratio=ort_ms / torch_ms, dets=f'{detections_torch}/{detections_ort}')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--models', nargs='+', default=list(MODELS), choices=list(MODELS))
    parser.add_argument('--threads', type=int, default=os.cpu_count() or 1)
    parser.add_argument('--repeats', type=int, default=30)
    parser.add_argument('--warmup', type=int, default=5)
    parser.add_argument('--size', type=int, nargs=2, default=(640, 640), metavar=('W', 'H'))
    parser.add_argument('--exporter', default='dynamo', choices=('dynamo', 'torchscript'))
    parser.add_argument('--busy-head', action='store_true', help='score biases 0: every prior is a candidate')
    args = parser.parse_args()
    warnings.filterwarnings('ignore')
    import onnxruntime
    import torch

    rows = []
    with tempfile.TemporaryDirectory() as work_dir:
        for name in args.models:
            rows.append(benchmark(name, args, work_dir))
    print(f'\nthreads={args.threads} repeats={args.repeats} warmup={args.warmup} exporter={args.exporter} '
          f'busy_head={args.busy_head} torch {torch.__version__} onnxruntime {onnxruntime.__version__}')
    print(f"| {'model':<10} | {'input':<13} | {'PyTorch eager ms':>16} | {'ONNX Runtime ms':>15} | "
          f"{'ORT / PyTorch':>13} | {'dets (pt/ort)':>13} |")
    print(f"|{'-' * 12}|{'-' * 15}|{'-' * 18}:|{'-' * 17}:|{'-' * 15}:|{'-' * 15}:|")
    for row in rows:
        print(f"| {row['model']:<10} | {row['shape']:<13} | {row['torch_ms']:>16.1f} | {row['ort_ms']:>15.1f} | "
              f"{row['ratio']:>13.2f} | {row['dets']:>13} |")


if __name__ == '__main__':
    main()
