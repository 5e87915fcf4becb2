"""Time the SDK's stages per deployed folder: preprocess / net / postprocess (median of repeats).

    python tools/benchmark_sdk.py DIR [DIR ...] [--img IMG] [--repeats 30] [--device cpu]
    python tools/benchmark_sdk.py --deploy-demo work_dirs/sdk_bench   # deploys ResNet-18 and RetinaNet 640x640
                                                                      # there first (random weights), then times

Each stage is timed alone on the same image through the handle's stage methods
(``preprocess``, ``forward``, ``postprocess``), interleaved in one loop so
that load from other processes hits the three alike. Prints a table with the
share of pre + post in the net time (the goal for RetinaNet 640x640 on the CPU
is <= 10 %).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Dict, List

#: what --deploy-demo deploys: (folder name, deploy config, model config)
DEMO_MODELS = (
    ('resnet18', 'configs/mmpretrain/classification_onnxruntime_static.py', 'mmpretrain::resnet/resnet18_8xb32_in1k.py'),
    ('retinanet_640', 'configs/mmdet/detection/detection_onnxruntime-640x640_static.py',
     'mmdet::retinanet/retinanet_r18_fpn_1x_coco.py'),
)


def deploy_demo(work_dir: str, img: str) -> List[str]:
    """Deploy :data:`DEMO_MODELS` under ``work_dir`` (skipping folders already there); return the folders."""
    from mmdeploy.apis import onnx2backend, torch2onnx
    from mmdeploy.apis.sdk_meta import export2SDK

    folders = []
    for name, deploy_cfg, model_cfg in DEMO_MODELS:
        folder = os.path.join(work_dir, name)
        if not os.path.isfile(os.path.join(folder, 'deploy.json')):
            print(f'deploying {name} into {folder} ...', file=sys.stderr)
            os.makedirs(folder, exist_ok=True)
            onnx_file = torch2onnx(img, folder, 'end2end.onnx', deploy_cfg, model_cfg)
            files = onnx2backend(onnx_file, 'onnxruntime', deploy_cfg, folder)
            export2SDK(deploy_cfg, model_cfg, folder, backend_files=files)
        folders.append(folder)
    return folders


def time_stages(folder: str, image, repeats: int, warmup: int, device: str) -> Dict[str, float]:
    """Median milliseconds of each stage on ``image`` (plus the task and the net's input size)."""
    from mmdeploy.sdk import open_model

    with open_model(folder, device) as handle:
        times: Dict[str, List[float]] = {'pre': [], 'net': [], 'post': []}
        for i in range(warmup + repeats):
            t0 = time.perf_counter()
            tensor, meta = handle.preprocess(image)
            t1 = time.perf_counter()
            outputs = handle.forward(tensor[None])
            t2 = time.perf_counter()
            handle.postprocess({k: v[0] for k, v in outputs.items()}, meta)
            t3 = time.perf_counter()
            if i >= warmup:
                times['pre'].append(t1 - t0)
                times['net'].append(t2 - t1)
                times['post'].append(t3 - t2)
        shape = 'x'.join(str(int(s)) for s in tuple(tensor.shape)[-2:][::-1])
        return {'task': handle.model.task, 'input': shape,
                **{k: 1000 * statistics.median(v) for k, v in times.items()}}


def main(argv: List[str] = None) -> int:
    """Parse arguments, time every folder, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('folders', nargs='*', help='deployed folders')
    parser.add_argument('--deploy-demo', metavar='WORK_DIR', default=None,
                        help='deploy ResNet-18 and RetinaNet 640x640 there first and time them too')
    parser.add_argument('--img', default='demo/demo.png', help='image (default demo/demo.png, 480x360)')
    parser.add_argument('--repeats', type=int, default=30)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args(argv)
    import cv2

    folders = list(args.folders) + (deploy_demo(args.deploy_demo, args.img) if args.deploy_demo else [])
    if not folders:
        parser.error('give deployed folders, or --deploy-demo WORK_DIR')
    image = cv2.imread(args.img)
    if image is None:
        parser.error(f'cannot read {args.img}')
    print(f'image {args.img} ({image.shape[1]}x{image.shape[0]}), device {args.device}, median of {args.repeats} '
          f'runs, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}')
    print(f'| folder | task | net input | preprocess ms | net ms | postprocess ms | (pre + post) / net |')
    print('|---|---|---|---:|---:|---:|---:|')
    for folder in folders:
        t = time_stages(folder, image, args.repeats, args.warmup, args.device)
        share = 100 * (t['pre'] + t['post']) / t['net']
        print(f'| {os.path.basename(os.path.normpath(folder))} | {t["task"]} | {t["input"]} | {t["pre"]:.2f} | '
              f'{t["net"]:.2f} | {t["post"]:.2f} | {share:.1f} % |')
    return 0


if __name__ == '__main__':
    sys.exit(main())
