"""The SDK on the GPU: a deployed folder run with ``device='cuda'`` (CUDA preprocessing + ONNX Runtime's CUDA
provider) against ``device='cpu'``, and the time of each (median of repeats, CUDA synchronised).

Usage (GPU machine, after ``eval "$(bash tools/ort_gpu/device_steps.sh env)"``):
    python3 tools/ort_gpu/sdk_cuda_check.py MODEL_DIR IMAGE [--repeats 50]
Tolerances: boxes 1e-2 px and scores 1e-4 for detectors (float32 on both devices, TF32 off), class scores 1e-5.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def _median_ms(fn, repeats: int) -> float:
    import torch

    fn()
    torch.cuda.synchronize()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('model_dir')
    parser.add_argument('image')
    parser.add_argument('--repeats', type=int, default=50)
    args = parser.parse_args()
    import cv2
    import numpy as np

    from mmdeploy.sdk.handle import open_model

    image = cv2.imread(args.image)
    with open_model(args.model_dir, 'cpu') as cpu, open_model(args.model_dir, 'cuda') as cuda:
        a, b = cpu(image), cuda(image)
        print(f'{type(cuda).__name__} on {args.model_dir}: cpu {a!r:.200}')
        print(f'cuda {b!r:.200}')
        if hasattr(a, 'bboxes'):
            assert len(a) == len(b), (len(a), len(b))
            assert (a.labels == b.labels).all()
            box = float(np.abs(a.bboxes - b.bboxes).max()) if len(a) else 0.0
            score = float(np.abs(a.scores - b.scores).max()) if len(a) else 0.0
            print(f'{len(a)} detections on both; max box diff {box:.3g} px, max score diff {score:.3g}')
            assert box <= 1e-2 and score <= 1e-4
        else:
            diff = float(np.abs(a.scores - b.scores).max())
            print(f'labels {a.labels[:5]} / {b.labels[:5]}; max score diff {diff:.3g}')
            assert diff <= 1e-5
        print(f'| device | median ms per image ({args.repeats} runs) |\n|---|---|')
        for name, handle in (('cpu', cpu), ('cuda', cuda)):
            print(f'| {name} | {_median_ms(lambda h=handle: h(image), args.repeats):.2f} |')
    return 0


if __name__ == '__main__':
    sys.exit(main())
