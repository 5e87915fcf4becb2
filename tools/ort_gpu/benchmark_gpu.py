"""GPU engines against PyTorch on the lent GPU machine: correctness and median latency, as markdown tables.

Cases (random weights): ResNet-50 (mmpretrain) at batch 1 and 32 (224x224), RetinaNet-R50 (mmdet) at
batch 1, 1x3x800x1344. Sides, each on the same preprocessed CUDA tensor:

- PyTorch eager fp32 (the codebase's ``predict``: softmax / decoding + NMS), eager fp16 (``model.half()``;
  detection: backbone, neck and head in fp16, decoding + NMS in fp32, which mmdet does not run in half),
  and ``torch.compile(mode='reduce-overhead')`` in fp16 (classification: the whole network + softmax;
  detection: backbone, neck and head compiled, decoding + NMS eager, as mmdet runs them);
- every GPU engine the plugin registry has, exported static at the case's batch and size: ONNX Runtime's
  CUDA provider at fp32 and fp16 (``backend_config.precision``), fp16 with channels-last convolutions
  (``prefer_nhwc``) and with a CUDA graph (``cuda_graph``, classifiers: a detector's NMS output is
  data-dependent); TorchScript fp32 (plain, CUDA graph, and ``cudnn_benchmark`` + CUDA graph) and
  AOTInductor fp16 (plain, ``freezing``, frozen with cuDNN's fused convolution + ReLU ``fuse_conv_relu``,
  and for classifiers frozen + CUDA graph, each with and without ``max_autotune`` and ``cudnn_benchmark``;
  frozen + CUDA graph also in bf16, with ``coordinate_descent_tuning`` and with ``fuse_conv_relu``) when
  registered.

Correctness: each engine's results against PyTorch eager fp32 run in exact float32 (no TF32), through
the task's own comparison (the deploy gate's), at the tolerances the engine's precision warrants.
Latency: CUDA synchronised around every call, ``--warmup`` calls then the median and p90 of
``--repeats``. PyTorch eager fp32 keeps torch's default TF32 convolutions (what a user gets); ONNX
Runtime fp32 runs true float32 (``use_tf32 0``, as mmdeploy's wrapper asks).

Usage (on the GPU machine, after ``eval "$(bash tools/ort_gpu/device_steps.sh env)"``):
    python3 tools/ort_gpu/benchmark_gpu.py [--cases resnet50:1 resnet50:32 retinanet_r50:1]
        [--repeats 50] [--warmup 10] [--exporter dynamo] [--json out.json] [--only REGEX] [--keep DIR]
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import re
import statistics
import sys
import tempfile
import time
from functools import partial
from typing import Any, Callable, Dict, List, Optional

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)

#: name -> (model config, deploy config, input size (w, h)); every engine is exported static at the case's
#: batch and size (what a GPU deployment for a fixed batch uses; CUDA graphs need it)
MODELS = {
    'resnet50': ('mmpretrain::resnet/resnet50_8xb32_in1k.py',
                 os.path.join(REPO, 'configs/mmpretrain/classification_onnxruntime_static.py'), (224, 224)),
    'resnet18': ('mmpretrain::resnet/resnet18_8xb32_in1k.py',  # the CPU dry run's quick case
                 os.path.join(REPO, 'configs/mmpretrain/classification_onnxruntime_static.py'), (64, 64)),
    'retinanet_r50': ('mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
                      os.path.join(REPO, 'configs/mmdet/detection/detection_onnxruntime_static.py'), (1344, 800)),
}
#: tolerances of the correctness table by precision (fp16: 11 significant bits)
TOLERANCES = {'FP32': {'score_atol': 1e-3, 'box_atol': 1.0}, 'FP16': {'score_atol': 1e-2, 'box_atol': 2.0},
              'BF16': {'score_atol': 3e-2, 'box_atol': 4.0}}


def timed(fn: Callable[[], Any], repeats: int, warmup: int) -> Dict[str, float]:
    """Median and p90 milliseconds of ``fn`` with CUDA synchronised before and after each call."""
    import torch

    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        samples.append((time.perf_counter() - start) * 1e3)
    samples.sort()
    return {'ms': statistics.median(samples), 'p90': samples[min(len(samples) - 1, int(0.9 * len(samples)))]}


def half_detector_forward(model: Any, samples: List[Any],
                          wrap: Callable[[Callable[[Any], Any]], Callable[[Any], Any]] = lambda f: f
                          ) -> Callable[[Any], Any]:
    """A half detector's forward: backbone/neck/head (passed through ``wrap``) in fp16, decoding + NMS in fp32.

    mmdet's decoding and NMS do not run in half.
    """
    head = wrap(lambda x: model.bbox_head(model.extract_feat(x)))

    def run(x: Any) -> Any:
        outs = head(x)
        return model.bbox_head.predict_by_feat(*[[t.float() for t in level] for level in outs],
                                               batch_img_metas=[s.metainfo for s in samples], rescale=True)
    return run


def compiled_forward(name: str, model: Any, samples: List[Any]) -> Callable[[Any], Any]:
    """What torch.compile gets: the network (+ softmax) for a classifier; backbone/neck/head for a detector."""
    import torch

    if name.startswith('resnet'):
        net = torch.compile(lambda x: torch.softmax(model(x, mode='tensor'), dim=1), mode='reduce-overhead')
        return net
    return half_detector_forward(model, samples, lambda f: torch.compile(f, mode='reduce-overhead'))


def engine_variants(name: str, cuda: bool = True) -> List[Dict[str, Any]]:
    """``backend_config`` dicts to measure: every registered GPU-capable engine at its precisions and options.

    CUDA graphs only where no output is data-dependent (classifiers: a detector's NMS output is not); the
    options that need CUDA (graphs, channels-last convolutions) only on a GPU.
    """
    from mmdeploy.plugins import get_registry

    registry = get_registry()
    graphs = name.startswith('resnet') and cuda
    variants = []

    def available(engine: str) -> bool:
        entry = registry.backends.get(engine)
        return entry is not None and entry.available

    if available('onnxruntime'):
        variants += [dict(type='onnxruntime', precision='FP32'), dict(type='onnxruntime', precision='FP16')]
        if graphs:
            variants.append(dict(type='onnxruntime', precision='FP16', cuda_graph=True))
        if cuda:
            variants.append(dict(type='onnxruntime', precision='FP16', prefer_nhwc=True))
        if graphs:
            variants.append(dict(type='onnxruntime', precision='FP16', prefer_nhwc=True, cuda_graph=True))
    if available('torchscript'):
        variants.append(dict(type='torchscript', precision='FP32'))
        if graphs:
            variants += [dict(type='torchscript', precision='FP32', cuda_graph=True),
                         dict(type='torchscript', precision='FP32', cudnn_benchmark=True, cuda_graph=True)]
    if available('aot_inductor'):
        variants += [dict(type='aot_inductor', precision='FP16'),
                     dict(type='aot_inductor', precision='FP16', freezing=True)]
        if cuda:
            variants.append(dict(type='aot_inductor', precision='FP16', freezing=True, fuse_conv_relu=True))
        if graphs:
            frozen = dict(type='aot_inductor', precision='FP16', freezing=True)
            variants += [dict(frozen, cuda_graph=True), dict(frozen, cudnn_benchmark=True, cuda_graph=True),
                         dict(frozen, precision='BF16', cuda_graph=True),
                         dict(frozen, coordinate_descent_tuning=True, cuda_graph=True),
                         dict(frozen, fuse_conv_relu=True, cuda_graph=True),
                         dict(frozen, fuse_conv_relu=True, coordinate_descent_tuning=True, cuda_graph=True)]
            # Inductor benchmarks its kernel choices while compiling (minutes): only where a graph replays it
            variants += [dict(frozen, max_autotune=True, cuda_graph=True),
                         dict(frozen, max_autotune=True, cudnn_benchmark=True, cuda_graph=True)]
    return variants


#: options that change only how the wrapper runs the converted files, not the files themselves
RUN_OPTIONS = ('cuda_graph', 'prefer_nhwc', 'fuse_conv_bias', 'cudnn_conv_algo_search', 'cudnn_benchmark')


def label_of(variant: Dict[str, Any]) -> str:
    text = f"{variant['type']} {variant.get('precision', 'FP32').lower()}"
    for key, words in (('freezing', 'frozen'), ('max_autotune', 'max-autotune'),
                       ('coordinate_descent_tuning', 'coordinate descent'),
                       ('fuse_conv_relu', 'cuDNN conv+ReLU'), ('prefer_nhwc', 'NHWC'),
                       ('cudnn_benchmark', 'cuDNN benchmark'), ('cuda_graph', 'CUDA graph')):
        if variant.get(key):
            text += f' + {words}'
    return text


def decisive(name: str, model: Any, inputs: Any) -> None:
    """Random weights that decide, so the correctness check compares something.

    A random ResNet spreads its probabilities evenly (~1e-3 for each of 1000 classes) and a random RetinaNet
    detects nothing (score convs at the constant prior). The classifier's last layer is scaled to logits of
    spread 3 on ``inputs``; the detector's score convs are redrawn as the detection tests do
    (``tests/mmdet/det_helpers.py``: logits of mean -8 and spread 1.5).
    """
    import torch

    with torch.no_grad():
        if name.startswith('resnet'):
            scale = 3.0 / float(model(inputs, mode='tensor').std())
            model.head.fc.weight.mul_(scale)
            model.head.fc.bias.mul_(scale)
            return
        sys.path.insert(0, os.path.join(REPO, 'tests', 'mmdet'))
        from det_helpers import spread_scores

        spread_scores(model, inputs, [r'retina_cls'], -8.0, 1.5)


def save_rows(rows: List[Dict[str, Any]], path: Optional[str]) -> None:
    """Write ``rows`` to ``path`` (JSON) if given: after every side, so a crash or a time limit keeps the rest."""
    if path:
        with open(path + '.tmp', 'w') as f:
            json.dump(rows, f, indent=1)
        os.replace(path + '.tmp', path)


def run_case(name: str, batch: int, args: argparse.Namespace, work_dir: str,
             size: Optional[tuple] = None, earlier: Optional[List[Dict[str, Any]]] = None) -> List[Dict[str, Any]]:
    import numpy as np
    import torch

    from mmdeploy.apis.pytorch2onnx import build_task_processor
    from mmdeploy.codebase.base.device import exact_fp32
    from mmdeploy.utils.config import load_config

    model_cfg, deploy_file, default_size = MODELS[name]
    size = tuple(size or default_size)
    base_cfg = load_config(deploy_file)
    base_cfg.onnx_config.exporter = args.exporter
    base_cfg.onnx_config.input_shape = list(size)
    base_cfg.onnx_config.dynamic_axes = None
    torch.manual_seed(0)
    device = args.device
    task = build_task_processor(load_config(model_cfg), base_cfg, device)
    model = task.build_pytorch_model()
    rng = np.random.default_rng(0)
    images = [(rng.random((size[1], size[0], 3)) * 255).astype(np.uint8) for _ in range(batch)]
    data, inputs = task.create_input(images, tuple(size), model.data_preprocessor)
    inputs = inputs.to(device)
    # predict() writes its results into the data samples it is given: every side gets its own copy, so the
    # reference is not overwritten by a later side
    samples = copy.deepcopy(data['data_samples'])
    decisive(name, model, inputs)
    rows: List[Dict[str, Any]] = []

    def record(row: Dict[str, Any]) -> None:
        rows.append(row)
        save_rows((earlier or []) + rows, args.json)

    with torch.inference_mode(), exact_fp32(device):
        reference = model.test_step(copy.deepcopy(data))

    def add(side: str, precision: str, fn: Callable[[], Any], check: str) -> None:
        try:
            t = timed(fn, args.repeats, args.warmup)
        except Exception as exc:  # one side failing must not hide the others
            record(dict(case=f'{name} b{batch}', side=side, precision=precision, ms=None, p90=None,
                        check=f'failed: {first_line(exc)[:120]}'))
            return
        record(dict(case=f'{name} b{batch}', side=side, precision=precision, check=check, **t))
        print(f'  {side:34s} {precision:5s} {t["ms"]:8.3f} ms  {check}', flush=True)

    def eager() -> Any:
        with torch.inference_mode():
            return model.predict(inputs, samples)
    add('PyTorch eager', 'FP32', eager, 'reference')

    half = copy.deepcopy(model).half()
    half_samples = copy.deepcopy(samples)
    inputs_half = inputs.half()

    half_forward = (partial(half.predict, data_samples=half_samples) if name.startswith('resnet')
                    else half_detector_forward(half, half_samples))

    def eager_half() -> Any:
        with torch.inference_mode():
            return half_forward(inputs_half)
    add('PyTorch eager', 'FP16', eager_half, '')
    try:
        if device == 'cpu' or 'compile' in args.skip:
            raise RuntimeError('skipped (--skip compile, or the CPU dry run)')
        compiled = compiled_forward(name, half, samples)
    except Exception as exc:
        compiled = None
        print(f'  torch.compile unavailable: {exc}')
    if compiled is not None:
        def run_compiled() -> Any:
            with torch.inference_mode():
                return compiled(inputs_half)
        add('torch.compile reduce-overhead', 'FP16', run_compiled, '')

    converted: Dict[str, List[str]] = {}  # files per export key: variants differing in RUN_OPTIONS share them
    variants = [v for v in engine_variants(name, device.startswith('cuda')) if v['type'] not in args.skip
                and (args.only is None or re.search(args.only, label_of(v)))]
    for variant in variants:
        cfg = copy.deepcopy(base_cfg)
        cfg.backend_config = dict(variant)
        precision = str(variant.get('precision', 'FP32')).upper()
        label = label_of(variant)
        try:
            # the variant's own task processor: PyTorch-native engines are found through its backend_config
            vtask = build_task_processor(load_config(model_cfg), cfg, device)
            key = repr(sorted((k, v) for k, v in variant.items() if k not in RUN_OPTIONS))
            if key not in converted:
                folder = os.path.join(work_dir, f'{name}-b{batch}-{len(converted)}')
                os.makedirs(folder, exist_ok=True)
                started = time.perf_counter()
                converted[key] = convert(vtask, model, images, cfg, folder, variant, converted, device)
                print(f'  ({label}: converted in {time.perf_counter() - started:.0f} s)', flush=True)
            backend_model = vtask.build_backend_model(converted[key])
            with torch.inference_mode():
                results = backend_model.test_step(copy.deepcopy(data))
            checks, _ = vtask.compare_results(reference, results, dict(vtask.default_tolerances(),
                                                                       **tolerances_for(vtask, precision)))
            check = '; '.join(f'{c.name}: {"ok" if c.passed else "FAILED"} ({c.detail})' for c in checks)
            wrapper = backend_model.wrapper
            feed = {wrapper.input_names[0]: inputs}
            add(label, precision, lambda w=wrapper: w.forward(feed), check)
        except Exception as exc:
            record(dict(case=f'{name} b{batch}', side=label, precision=precision, ms=None, p90=None,
                        check=f'failed: {first_line(exc)[:160]}'))
            print(f'  {label:34s} {precision:5s} failed: {exc}', flush=True)
    return rows


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f'{type(exc).__name__}: {text.splitlines()[0] if text else ""}'


def tolerances_for(task: Any, precision: str) -> Dict[str, float]:
    names = task.default_tolerances()
    return {k: v for k, v in TOLERANCES.get(precision, {}).items() if k in names}


def convert(task: Any, model: Any, images: List[Any], cfg: Any, folder: str, variant: Dict[str, Any],
            converted: Dict[str, List[str]], device: str) -> List[str]:
    """Export at the case's batch (all ``images``) and convert for ``variant``.

    ONNX Runtime variants share one exported ONNX file (the first one made); fp16 converts it.
    """
    import shutil

    from mmdeploy.apis.backend import onnx2backend
    from mmdeploy.apis.pytorch2onnx import export_task_model

    if variant['type'] != 'onnxruntime':  # PyTorch-native engines export the model themselves
        from mmdeploy.apis.pytorch2backend import export_task_model_to_backend

        return export_task_model_to_backend(task, model, images, folder, device)
    target = os.path.join(folder, cfg.onnx_config.save_file)
    onnx_file = next((f[0] for f in converted.values() if f[0].endswith('.onnx') and not f[0].endswith('.fp16.onnx')),
                     None)
    if onnx_file is None:
        export_task_model(task, model, images, target)
    else:
        shutil.copy(onnx_file, target)
    return onnx2backend(target, 'onnxruntime', cfg, folder, device)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--cases', nargs='+', default=['resnet50:1', 'resnet50:32', 'retinanet_r50:1'],
                        help='name:batch[:WxH]; names: ' + ', '.join(MODELS))
    parser.add_argument('--repeats', type=int, default=50)
    parser.add_argument('--warmup', type=int, default=10)
    parser.add_argument('--exporter', default='dynamo', choices=['dynamo', 'torchscript'])
    parser.add_argument('--json', default=None)
    parser.add_argument('--skip', nargs='*', default=[],
                        help="sides to leave out: engine names (e.g. aot_inductor) and/or 'compile'")
    parser.add_argument('--only', default=None,
                        help="regular expression: engine sides whose label matches it (e.g. 'fp16'); PyTorch's "
                             'sides always run')
    parser.add_argument('--device', default='cuda', help="'cpu' for a dry run of the script's logic only")
    parser.add_argument('--keep', default=None, metavar='DIR',
                        help='keep the exported / converted files in DIR (default: a temporary folder), e.g. '
                             'for tools/ort_gpu/ort_profile.py')
    args = parser.parse_args(argv)
    import torch

    if args.device.startswith('cuda') and not torch.cuda.is_available():
        print('error: needs a CUDA GPU (or --device cpu for a dry run)', file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory() as temp_dir:
        work_dir = args.keep or temp_dir
        os.makedirs(work_dir, exist_ok=True)
        for case in args.cases:
            name, batch, *wh = case.split(':')
            size = tuple(int(v) for v in wh[0].split('x')) if wh else None
            print(f'== {name} batch {batch}', flush=True)
            rows += run_case(name, int(batch), args, work_dir, size, earlier=rows)
    where = torch.cuda.get_device_name(0) if args.device.startswith('cuda') else 'CPU (dry run)'
    print(f'\nGPU: {where}, torch {torch.__version__}, {args.exporter} exporter, '
          f'median of {args.repeats} after {args.warmup} warm-up calls\n')
    print('| case | side | precision | median ms | p90 ms | x eager fp32 | vs PyTorch fp32 (exact) |')
    print('|---|---|---|---|---|---|---|')
    eager = {r['case']: r['ms'] for r in rows if r['side'] == 'PyTorch eager' and r['precision'] == 'FP32'}
    for r in rows:
        ms = '' if r['ms'] is None else f"{r['ms']:.3f}"
        p90 = '' if r['p90'] is None else f"{r['p90']:.3f}"
        ratio = '' if r['ms'] is None or not eager.get(r['case']) else f"{eager[r['case']] / r['ms']:.2f}x"
        print(f"| {r['case']} | {r['side']} | {r['precision']} | {ms} | {p90} | {ratio} | {r['check']} |")
    return 0


if __name__ == '__main__':
    sys.exit(main())
