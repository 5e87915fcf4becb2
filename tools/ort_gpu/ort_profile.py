"""Where an ONNX Runtime session spends its time: per operator type and execution provider, and the slowest nodes.

Runs an ONNX file on random inputs of its own (static) input shapes: first a plain session for the median
latency, then a profiling session whose per-node kernel times (after the warm-up runs) are summed per run.
Nodes that ONNX Runtime placed on the CPU provider and the Memcpy nodes it inserted show up as their own
rows, which is what tells a slow GPU graph from one that is partly run on the host.

Usage (on the GPU machine, after ``eval "$(bash tools/ort_gpu/device_steps.sh env)"``):
    python3 tools/ort_gpu/ort_profile.py MODEL.onnx [--device cuda] [--option use_tf32=1 ...]
        [--warmup 3] [--runs 5] [--top 15]

``--option`` sets a CUDA provider option (``use_tf32``, ``cudnn_conv_algo_search``, ``prefer_nhwc``, ...) on
top of the ones mmdeploy's wrapper uses (``use_tf32=0``).
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)

_NUMPY_OF = {'tensor(float)': 'float32', 'tensor(float16)': 'float16', 'tensor(int64)': 'int64',
             'tensor(int32)': 'int32', 'tensor(bool)': 'bool', 'tensor(double)': 'float64'}


def random_feed(session: Any, seed: int = 0) -> Dict[str, Any]:
    """Inputs of the session's own shapes: standard normal floats (a normalised image), zeros otherwise."""
    import numpy as np

    rng = np.random.default_rng(seed)
    feed = {}
    for meta in session.get_inputs():
        if not all(isinstance(d, int) for d in meta.shape):
            raise SystemExit(f'input {meta.name!r} has a dynamic shape {meta.shape}: profile a static export')
        dtype = _NUMPY_OF.get(meta.type, 'float32')
        feed[meta.name] = (rng.standard_normal(meta.shape).astype(dtype) if dtype.startswith('float')
                           else np.zeros(meta.shape, dtype))
    return feed


def providers_for(device: str, options: Dict[str, str]) -> List[Any]:
    if not device.startswith('cuda'):
        return ['CPUExecutionProvider']
    device_id = int(device.split(':')[1]) if ':' in device else 0
    return [('CUDAExecutionProvider', {'device_id': str(device_id), 'use_tf32': '0', **options}),
            'CPUExecutionProvider']


def session_for(onnx_file: str, providers: List[Any], profile_dir: Optional[str] = None) -> Any:
    import onnxruntime as ort

    from mmdeploy.backend.onnxruntime.ops import register_if_needed

    options = ort.SessionOptions()
    if profile_dir:
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(profile_dir, 'ort_profile')
    register_if_needed(options, onnx_file)
    return ort.InferenceSession(onnx_file, options, providers=providers)


def latency(session: Any, feed: Dict[str, Any], warmup: int, runs: int) -> Tuple[float, float]:
    """Median and minimum milliseconds of ``session.run`` (numpy in and out: includes the copies)."""
    for _ in range(warmup):
        session.run(None, feed)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feed)
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples), min(samples)


def node_times(events: List[Dict[str, Any]], warmup: int) -> Tuple[List[Dict[str, Any]], int]:
    """The node kernel events of the runs after ``warmup``, and how many runs that is."""
    starts = sorted(e['ts'] for e in events if e.get('cat') == 'Session' and e.get('name') == 'model_run')
    if len(starts) <= warmup:
        raise SystemExit(f'the profile has {len(starts)} runs, not more than the {warmup} warm-ups')
    first = starts[warmup]
    nodes = [e for e in events if e.get('cat') == 'Node' and e.get('name', '').endswith('_kernel_time')
             and e['ts'] >= first]
    return nodes, len(starts) - warmup


def summarise(nodes: List[Dict[str, Any]], runs: int, top: int) -> str:
    by_kind: Dict[Tuple[str, str], List[float]] = collections.defaultdict(lambda: [0.0, 0])
    by_node: Dict[str, Dict[str, Any]] = {}
    for e in nodes:
        args = e.get('args', {})
        key = (args.get('op_name', '?'), args.get('provider', '?'))
        by_kind[key][0] += e['dur'] / 1e3 / runs
        by_kind[key][1] += 1
        name = e['name'][:-len('_kernel_time')]
        entry = by_node.setdefault(name, dict(ms=0.0, op=key[0], provider=key[1],
                                              shapes=args.get('input_type_shape', [])))
        entry['ms'] += e['dur'] / 1e3 / runs
    total = sum(v[0] for v in by_kind.values()) or 1e-9
    lines = [f'kernel time per run: {total:.2f} ms (sum over nodes; ONNX Runtime profiler, {runs} runs)', '',
             '| operator | provider | nodes | ms per run | share |', '|---|---|---|---|---|']
    for (op, provider), (ms, count) in sorted(by_kind.items(), key=lambda kv: -kv[1][0]):
        lines.append(f'| {op} | {provider} | {count // runs} | {ms:.3f} | {100 * ms / total:.1f} % |')
    lines += ['', f'slowest {top} nodes:', '', '| node | operator | provider | ms per run | input shapes |',
              '|---|---|---|---|---|']
    for name, entry in sorted(by_node.items(), key=lambda kv: -kv[1]['ms'])[:top]:
        shapes = ', '.join(str(next(iter(s.values()))) for s in entry['shapes'] if isinstance(s, dict))
        lines.append(f"| {name} | {entry['op']} | {entry['provider']} | {entry['ms']:.3f} | {shapes} |")
    return '\n'.join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('onnx_file')
    parser.add_argument('--device', default='cuda')
    parser.add_argument('--option', action='append', default=[], metavar='KEY=VALUE',
                        help='a CUDA provider option (repeatable)')
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--runs', type=int, default=5)
    parser.add_argument('--top', type=int, default=15)
    args = parser.parse_args(argv)
    options = dict(o.split('=', 1) for o in args.option)
    providers = providers_for(args.device, options)
    plain = session_for(args.onnx_file, providers)
    if args.device.startswith('cuda') and 'CUDAExecutionProvider' not in plain.get_providers():
        print('error: the CUDA provider did not load', file=sys.stderr)
        return 2
    feed = random_feed(plain)
    median, best = latency(plain, feed, args.warmup, args.runs)
    print(f'{os.path.basename(args.onnx_file)} on {args.device} {options or ""}: '
          f'median {median:.2f} ms, min {best:.2f} ms over {args.runs} runs after {args.warmup} warm-ups')
    del plain
    with tempfile.TemporaryDirectory() as folder:
        session = session_for(args.onnx_file, providers, folder)
        for _ in range(args.warmup + args.runs):
            session.run(None, feed)
        with open(session.end_profiling()) as f:
            events = json.load(f)
    nodes, runs = node_times(events, args.warmup)
    print(summarise(nodes, runs, args.top))
    return 0


if __name__ == '__main__':
    sys.exit(main())
