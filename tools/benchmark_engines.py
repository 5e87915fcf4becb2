"""Median latency of every installed engine against PyTorch eager on this CPU, as a markdown table.

Models: ResNet-18 (mmpretrain, batch 1, 224x224) and RetinaNet-R18 (mmdet, 640x640), random weights,
exported to ONNX once (``--exporter``) and converted for each engine. The engines come from the plugin
registry (every available backend, so a newly registered one joins without editing this script), each
at float32 and at the other precisions its ``backend_config.precision`` key accepts (``BF16``, ``FP16``);
a precision the engine runs as another (OpenVINO runs ``FP16`` as bf16 on CPUs without float16
arithmetic) is measured once, under the precision that ran.

Every side gets the same thread count (``--threads``, default 2): ``torch.set_num_threads`` for PyTorch,
and the ``*num_threads`` key the engine declares in ``backend_config`` (ONNX Runtime:
``intra_op_num_threads``, OpenVINO: ``num_threads``). Every side runs the whole inference after
preprocessing on the same ``1x3xHxW`` tensor: PyTorch with the codebase's ``predict`` (classification:
softmax; detection: decoding and NMS), the engines the end-to-end graph. The functions take turns call by
block by block (``--block`` calls each, the first of every block untimed: the thread pools of the side
that ran before, OpenMP's, ONNX Runtime's, TBB's, spin for a while after their last call and would slow it
down), so load from other processes hits all of them alike. The ratio is eager's median over the engine's
(> 1: faster than eager).

Usage:
    python tools/benchmark_engines.py [--models resnet18 retinanet] [--engines onnxruntime openvino]
        [--threads 2] [--repeats 30] [--warmup 5] [--block 6] [--exporter dynamo] [--ort-profile]

``--ort-profile`` prints where ONNX Runtime's time goes in each end-to-end graph (share per op type, from its
profiler): measured, RetinaNet-R18 640x640 is 88 % ``Conv`` with the whole post-processing under 10 %.
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import tempfile
import time
import warnings
from typing import Any, Callable, Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: name -> (model config, deploy config its ONNX file is exported with, input [W, H])
MODELS: Dict[str, Tuple[str, str, Tuple[int, int]]] = {
    'resnet18': ('mmpretrain::resnet/resnet18_8xb32_in1k.py',
                 'configs/mmpretrain/classification_onnxruntime_static.py', (224, 224)),
    'retinanet': ('mmdet::retinanet/retinanet_r18_fpn_1x_coco.py',
                  'configs/mmdet/detection/detection_onnxruntime_static.py', (640, 640)),
}
PRECISIONS = ('FP32', 'BF16', 'FP16')


def measure(funcs: Dict[Any, Callable[[], object]], repeats: int, warmup: int, block: int) -> Dict[Any, List[float]]:
    """Seconds of ``repeats`` timed calls of each function, after ``warmup`` untimed ones.

    The functions take turns in blocks of ``block`` calls; the first call of
    each block is not timed (it shares the cores with the threads the previous
    function left spinning).
    """
    for _ in range(warmup):
        for func in funcs.values():
            func()
    times: Dict[Any, List[float]] = {name: [] for name in funcs}
    while any(len(t) < repeats for t in times.values()):
        for name, func in funcs.items():
            count = min(max(block - 1, 1), repeats - len(times[name]))
            if count <= 0:
                continue
            if block > 1:
                func()
            for _ in range(count):
                start = time.perf_counter()
                func()
                times[name].append(time.perf_counter() - start)
    return times


def _declared_keys(engine: str) -> Dict[str, Any]:
    from mmdeploy.plugins import get_registry

    entry = get_registry().config_keys.get(('backend_config', engine))
    return dict(entry.value) if entry is not None else {}


def threads_key(engine: str) -> Optional[str]:
    """The ``backend_config`` key that sets the engine's thread count (``None``: it declares none)."""
    return next((k for k in _declared_keys(engine) if k == 'num_threads' or k.endswith('_num_threads')), None)


def precisions(engine: str) -> List[str]:
    """The precisions the engine's ``precision`` key accepts, FP32 first (only FP32 without the key)."""
    spec = _declared_keys(engine).get('precision')
    if spec is None or spec.check is None:
        return ['FP32']
    accepted = []
    for precision in PRECISIONS:
        try:
            if spec.check(precision):
                accepted.append(precision)
        except Exception:  # noqa: BLE001 a check may refuse by raising
            pass
    return accepted or ['FP32']


def engines(wanted: Optional[List[str]]) -> List[str]:
    """Available backends of the registry (the ones named in ``wanted``, when given)."""
    from mmdeploy.plugins import get_registry

    registry = get_registry()
    names = [n for n, e in registry.backends.items() if e.available]
    if wanted:
        unknown = [n for n in wanted if n not in names]
        if unknown:
            raise SystemExit(f'not available: {unknown}; available engines: {names}')
        names = [n for n in names if n in wanted]
    return names


def head_partition_files(task: Any, model: Any, image: Any, cfg: Any, folder: str) -> List[str]:
    """Engine files of the detector cut after its dense head (partition ``single_stage_head``).

    For engines without TopK / NonMaxSuppression (ncnn): the row then times
    the engine on that graph plus mmdet's decoding and NMS in PyTorch
    (:class:`~mmdeploy.codebase.mmdet.one_stage.head_partition_model.HeadPartitionModel`).
    """
    from mmdeploy.apis.backend import onnx2backend
    from mmdeploy.apis.pytorch2onnx import build_task_processor, export_task_model, partition_onnx

    cfg = copy.deepcopy(cfg)
    cfg.partition_config = dict(type='single_stage_head', apply_marks=True)
    head_task = build_task_processor(task.model_cfg, cfg)
    onnx_file = export_task_model(head_task, model, image, os.path.join(folder, 'end2end.onnx'))
    return onnx2backend(partition_onnx(onnx_file, cfg, folder), cfg.backend_config['type'], cfg, folder)


def ort_op_shares(onnx_file: str, feed: Dict[str, Any], threads: int, runs: int = 5) -> List[Tuple[str, float]]:
    """Share of ONNX Runtime's kernel time per op type over ``runs`` runs (its profiler), largest first.

    Shares, not times: they stay meaningful on a loaded machine.
    """
    import collections
    import json

    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.enable_profiling = True
    options.profile_file_prefix = os.path.join(os.path.dirname(onnx_file), 'ort_profile')
    session = ort.InferenceSession(onnx_file, options, providers=['CPUExecutionProvider'])
    for _ in range(runs):
        session.run(None, feed)
    with open(session.end_profiling()) as f:
        events = json.load(f)
    spent: collections.Counter = collections.Counter()
    for event in events:
        if event.get('cat') == 'Node' and event.get('name', '').endswith('_kernel_time'):
            spent[event['args']['op_name']] += event['dur']
    total = sum(spent.values()) or 1
    return [(op, us / total) for op, us in spent.most_common()]


def benchmark(name: str, args: argparse.Namespace, work_dir: str) -> List[Dict[str, Any]]:
    """Export one model, convert it for every engine variant and time them all; returns table rows."""
    import numpy as np
    import torch

    from mmdeploy.apis.backend import onnx2backend
    from mmdeploy.apis.pytorch2onnx import build_task_processor, export_task_model
    from mmdeploy.errors import UnsupportedModelError
    from mmdeploy.plugins import get_backend_manager
    from mmdeploy.utils.config import load_config

    model_cfg, export_cfg, size = MODELS[name]
    deploy_cfg = load_config(export_cfg)
    deploy_cfg.onnx_config.input_shape = list(size)
    deploy_cfg.onnx_config.exporter = args.exporter
    task = build_task_processor(load_config(model_cfg), deploy_cfg)
    torch.manual_seed(0)
    model = task.build_pytorch_model()
    image = (np.random.default_rng(0).random((size[1], size[0], 3)) * 255).astype(np.uint8)
    data, inputs = task.create_input(image, task.ir_input_shape(), model.data_preprocessor)
    onnx_file = export_task_model(task, model, image, os.path.join(work_dir, f'{name}.onnx'))
    input_name = deploy_cfg.onnx_config.get('input_names', ['input'])[0]
    feed = {input_name: inputs.numpy()}
    torch.set_num_threads(args.threads)
    samples = data['data_samples']

    def run_torch() -> object:
        with torch.inference_mode():
            return model.predict(inputs, samples)

    funcs: Dict[Tuple[str, str], Callable[[], object]] = {('PyTorch eager', 'FP32'): run_torch}
    wrappers = []
    for engine in engines(args.engines):
        manager = get_backend_manager(engine)
        key = threads_key(engine)
        for precision in precisions(engine):
            cfg = copy.deepcopy(deploy_cfg)
            cfg.backend_config = dict(type=engine, precision=precision)
            if key:
                cfg.backend_config[key] = args.threads
            folder = os.path.join(work_dir, f'{name}-{engine}-{precision}')
            try:
                files, label = onnx2backend(onnx_file, engine, cfg, folder), engine
            except UnsupportedModelError:  # no TopK / NMS layers (ncnn): the detector cut after its dense head
                files, label = head_partition_files(task, model, image, cfg, folder), f'{engine} (head graph)'
            ran = manager.run_precision(files, cfg)
            if (label, ran) in funcs:
                continue  # runs as a precision already measured
            wrapper = manager.build_wrapper(files, 'cpu', cfg)
            wrappers.append(wrapper)
            if label != engine:  # the whole inference: the graph, then mmdet's decoding and NMS in PyTorch
                from mmdeploy.codebase.mmdet.one_stage.head_partition_model import HeadPartitionModel

                head_model = HeadPartitionModel(wrapper, model.data_preprocessor, task.model_cfg)
                funcs[(label, ran)] = lambda m=head_model: m.predict(inputs, samples)
                continue
            funcs[(engine if key else f'{engine} (threads: its default)', ran)] = \
                (lambda w=wrapper: w.forward(feed))
    times = measure(funcs, args.repeats, args.warmup, args.block)
    if args.ort_profile:
        shares = ort_op_shares(onnx_file, feed, args.threads)
        print(f'{name}: ONNX Runtime kernel time by op type: ' +
              ', '.join(f'{op} {share * 100:.1f} %' for op, share in shares[:12]))
    for wrapper in wrappers:
        wrapper.close()
    eager = statistics.median(times[('PyTorch eager', 'FP32')]) * 1e3
    rows = []
    for (engine, precision), samples_s in times.items():
        ms = statistics.median(samples_s) * 1e3
        rows.append(dict(model=name, input=f'1x3x{size[1]}x{size[0]}', engine=engine, precision=precision, ms=ms,
                         ratio=eager / ms))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--models', nargs='+', default=list(MODELS), choices=list(MODELS))
    parser.add_argument('--engines', nargs='+', default=None, help='default: every available backend')
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=30)
    parser.add_argument('--warmup', type=int, default=5)
    parser.add_argument('--block', type=int, default=6, help='calls per turn, the first untimed (1: every call '
                        'timed, strict call-by-call alternation)')
    parser.add_argument('--exporter', default='dynamo', choices=('dynamo', 'torchscript'))
    parser.add_argument('--ort-profile', action='store_true', help="also print the share of ONNX Runtime's kernel "
                        'time per op type of each end-to-end graph (its profiler)')
    args = parser.parse_args()
    warnings.filterwarnings('ignore')
    import torch

    from mmdeploy.cli import _backend_state
    from mmdeploy.plugins import get_registry

    rows = []
    with tempfile.TemporaryDirectory() as work_dir:
        for name in args.models:
            rows.append(benchmark(name, args, work_dir))
    versions = '; '.join(f'{n}: {_backend_state(e)}' for n, e in get_registry().backends.items())
    print(f'\nthreads={args.threads} repeats={args.repeats} warmup={args.warmup} block={args.block} '
          f'exporter={args.exporter} '
          f'torch {torch.__version__}; {versions}')
    print('| model | input | engine | precision | median ms | speed-up vs eager |')
    print('|---|---|---|---|---:|---:|')
    for row in (r for group in rows for r in group):
        print(f"| {row['model']} | {row['input']} | {row['engine']} | {row['precision']} | {row['ms']:.1f} | "
              f"{row['ratio']:.2f}x |")


if __name__ == '__main__':
    main()
