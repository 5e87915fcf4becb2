"""SDK preprocessing on a GPU: CUDA vs CPU equality of every transform, and the speed of the two.

Run on the GPU machine (numpy + torch; OpenCV / Pillow optional)::

    python tools/sdk_transforms_gpu.py                 # equality table + speed table
    python tools/sdk_transforms_gpu.py --write-ref tools/sdk_transforms_gpu_ref.npz   # here, with OpenCV

The CPU reference of each case is the SDK's numpy / OpenCV path (tested
bit-exact against mmcv's transforms in tests/sdk/test_transforms.py). Where
OpenCV is importable it is computed live; otherwise it is read from the
``--ref`` .npz written on a machine that has it (inputs are stored too).

Speed: a 1920x1080 image through mmdet's test preprocessing (keep-ratio
Resize to 1333x800, Normalize, Pad size_divisor 32, to CHW); medians of
``--repeats`` runs, CUDA synchronised; the CUDA figure is given both from a
host numpy image (upload included) and from an image already on the GPU.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Any, Callable, Dict, List, Tuple

import numpy as np

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..')))

from mmdeploy.sdk.transforms import TRANSFORMS, build_preprocess  # noqa: E402

MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
LOAD = {'type': 'LoadImageFromFile'}
NORM = {'type': 'Normalize', 'mean': MEAN, 'std': STD, 'to_rgb': True}
TO_TENSOR = {'type': 'ImageToTensor', 'keys': ['img']}

#: name -> (transforms, input (h, w, grey?), allowed max abs difference CUDA vs CPU, why)
CASES: Dict[str, Tuple[List[Dict[str, Any]], Tuple[int, int, bool], float, str]] = {
    'LoadImageFromFile grey': ([{'type': 'LoadImageFromFile', 'color_type': 'grayscale'}], (37, 53, False), 0,
                               'OpenCV 15-bit fixed point'),
    'LoadImageFromFile to_float32': ([{'type': 'LoadImageFromFile', 'to_float32': True}], (37, 53, False), 0, ''),
    'Resize bilinear keep_ratio': ([LOAD, {'type': 'Resize', 'size': [333, 200], 'keep_ratio': True}],
                                   (101, 77, False), 0, 'cv2 fixed point reproduced'),
    'Resize bilinear down': ([LOAD, {'type': 'Resize', 'size': [61, 29]}], (241, 319, False), 0,
                             'cv2 fixed point reproduced'),
    'Resize nearest': ([LOAD, {'type': 'Resize', 'size': [100, 64], 'interpolation': 'nearest'}],
                       (37, 53, False), 0, ''),
    'Resize bilinear float': ([{'type': 'LoadImageFromFile', 'to_float32': True},
                               {'type': 'Resize', 'size': [70, 31]}], (57, 43, False), 1e-3,
                              'float32 products, cv2 SIMD order'),
    'Resize bicubic': ([LOAD, {'type': 'Resize', 'size': [70, 31], 'interpolation': 'bicubic'}], (101, 77, False),
                       1, 'torch bicubic vs cv2 fixed point'),
    'Resize area shrink': ([LOAD, {'type': 'Resize', 'size': [50, 50], 'interpolation': 'area'}], (100, 100, False),
                           1, 'float overlap weights vs cv2 2x fast path'),
    'Resize area enlarge': ([LOAD, {'type': 'Resize', 'size': [61, 45], 'interpolation': 'area'}], (30, 40, False),
                            0, 'cv2 fixed point reproduced'),
    'ResizeEdge short': ([LOAD, {'type': 'ResizeEdge', 'scale': 64, 'edge': 'short'}], (101, 77, False), 0, ''),
    'ResizeEdge pillow bicubic': ([LOAD, {'type': 'ResizeEdge', 'scale': 64, 'edge': 'short', 'backend': 'pillow',
                                          'interpolation': 'bicubic'}], (101, 77, False), 1,
                                  'Pillow 22-bit weights vs float32'),
    'RescaleToHeight': ([{'type': 'LoadImageFromFile', 'color_type': 'grayscale'},
                         {'type': 'RescaleToHeight', 'height': 32, 'min_width': 32, 'width_divisor': 16}],
                        (31, 97, True), 0, ''),
    'CenterCrop': ([LOAD, {'type': 'CenterCrop', 'crop_size': 41}], (101, 77, False), 0, ''),
    'Pad size_divisor': ([LOAD, {'type': 'Pad', 'size_divisor': 32}], (101, 77, False), 0, ''),
    'Pad square 114': ([LOAD, {'type': 'Pad', 'pad_to_square': True, 'pad_val': {'img': 114}}], (101, 77, False),
                       0, ''),
    'Pad reflect': ([LOAD, {'type': 'Pad', 'size_divisor': 16, 'padding_mode': 'reflect'}], (101, 77, False), 0, ''),
    'RandomCenterCropPad': ([{'type': 'LoadImageFromFile', 'to_float32': True},
                             {'type': 'RandomCenterCropPad', 'ratios': None, 'border': None, 'mean': [0, 0, 0],
                              'std': [1, 1, 1], 'to_rgb': True, 'test_mode': True,
                              'test_pad_mode': ['logical_or', 31], 'test_pad_add_pix': 1}], (101, 77, False), 0, ''),
    'Normalize': ([LOAD, NORM], (37, 53, False), 0, 'same float32 / float64 operations as mmcv'),
    'ImageToTensor': ([LOAD, TO_TENSOR], (37, 53, False), 0, ''),
    'pipeline resnet (ResizeEdge+CenterCrop)': ([LOAD, {'type': 'ResizeEdge', 'scale': 256, 'edge': 'short'},
                                                 {'type': 'CenterCrop', 'crop_size': 224}, NORM, TO_TENSOR],
                                                (241, 319, False), 0, ''),
    'pipeline retinanet (small)': ([LOAD, {'type': 'Resize', 'size': [333, 200], 'keep_ratio': True}, NORM,
                                    {'type': 'Pad', 'size_divisor': 32}, {'type': 'DefaultFormatBundle'}],
                                   (241, 319, False), 0, ''),
    'pipeline yolox (small)': ([LOAD, {'type': 'Resize', 'size': [160, 160], 'keep_ratio': True},
                                {'type': 'Pad', 'pad_to_square': True, 'pad_val': {'img': [114.0, 114.0, 114.0]}},
                                {'type': 'Normalize', 'mean': [0, 0, 0], 'std': [1, 1, 1], 'to_rgb': False},
                                {'type': 'Pad', 'size_divisor': 32}, {'type': 'DefaultFormatBundle'}],
                               (241, 319, False), 0, ''),
    'pipeline crnn': ([{'type': 'LoadImageFromFile', 'color_type': 'grayscale'},
                       {'type': 'RescaleToHeight', 'height': 32, 'min_width': 32, 'width_divisor': 16},
                       {'type': 'Normalize', 'mean': [127.0], 'std': [127.0], 'to_rgb': False}, TO_TENSOR],
                      (31, 97, False), 0, ''),
}
SPEED_PIPELINE = [LOAD, {'type': 'Resize', 'size': [1333, 800], 'keep_ratio': True}, NORM,
                  {'type': 'Pad', 'size_divisor': 32}, {'type': 'DefaultFormatBundle'}]

_CLASSES = {cls.name: cls for cls in TRANSFORMS}


def lookup(name: str) -> type:
    """The transform class of a type name, without the plugin registry (nothing else is needed here)."""
    return _CLASSES[name]


def make(transforms: List[Dict[str, Any]], device: str, fuse: bool = True) -> Any:
    """The preprocess on ``device``; ``'cpu-torch'`` is the torch (CUDA) code on CPU tensors."""
    if device == 'cpu-torch':
        return build_preprocess(transforms, 'cpu', fuse=fuse, torch_on_cpu=True, lookup=lookup)
    return build_preprocess(transforms, device, fuse=fuse, lookup=lookup)


def case_input(name: str, h: int, w: int, grey: bool) -> np.ndarray:
    rng = np.random.default_rng(sum(map(ord, name)))
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return img[..., :1] if grey else img


def have(module: str) -> bool:
    try:
        __import__(module)
        return True
    except ImportError:
        return False


def to_host(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, 'detach') else np.asarray(x)


def references(ref_path: str) -> Tuple[Dict[str, np.ndarray], Dict[str, np.ndarray], str]:
    """``(inputs, cpu outputs, source)``: computed live when OpenCV (and Pillow) are there, else the .npz."""
    if have('cv2') and have('PIL'):
        inputs = {n: case_input(n, *shape) for n, (_, shape, _, _) in CASES.items()}
        outs = {n: to_host(build_preprocess(t, 'cpu', lookup=lookup)(inputs[n])[0])
                for n, (t, _, _, _) in CASES.items()}
        return inputs, outs, 'live (numpy / OpenCV path)'
    if not os.path.isfile(ref_path):
        sys.exit(f'error: no OpenCV here and no reference file {ref_path}; write it with --write-ref on a machine '
                 f'with OpenCV, or pip install opencv-python-headless pillow')
    data = np.load(ref_path)
    inputs = {n: data[f'in/{n}'] for n in CASES if f'in/{n}' in data}
    outs = {n: data[f'out/{n}'] for n in CASES if f'out/{n}' in data}
    return inputs, outs, f'{ref_path} (written with OpenCV)'


def equality_table(device: str, ref_path: str) -> bool:
    inputs, outs, source = references(ref_path)
    print(f'\n## CUDA ({device}) vs CPU, reference: {source}\n')
    print('| case | input | output | max abs diff | differing values | allowed | ok |')
    print('|---|---|---|---|---|---|---|')
    all_ok = True
    for name, (transforms, _, atol, why) in CASES.items():
        if name not in outs:
            print(f'| {name} | - | - | - | - | {atol} | missing in reference |')
            continue
        got = to_host(make(transforms, device)(inputs[name])[0])
        ref = outs[name]
        if got.shape != ref.shape:
            print(f'| {name} | {inputs[name].shape} | {got.shape} vs {ref.shape} | - | - | {atol} | NO |')
            all_ok = False
            continue
        diff = np.abs(got.astype(np.float64) - ref.astype(np.float64))
        ok = float(diff.max()) <= atol
        all_ok &= ok
        note = f' ({why})' if why else ''
        print(f'| {name} | {"x".join(map(str, inputs[name].shape))} | {"x".join(map(str, got.shape))} | '
              f'{diff.max():.3g} | {int((diff > 0).sum())} / {diff.size} | {atol}{note} | {"yes" if ok else "NO"} |')
    return all_ok


def median_ms(fn: Callable[[], Any], repeats: int, sync: Callable[[], None]) -> float:
    for _ in range(3):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def speed_table(device: str, repeats: int) -> None:
    import torch

    img = np.random.default_rng(0).integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    torch_device = 'cpu' if device == 'cpu-torch' else device
    sync = (lambda: torch.cuda.synchronize(device)) if device.startswith('cuda') else (lambda: None)
    rows = []
    if have('cv2'):
        for fuse in (False, True):
            pre = build_preprocess(SPEED_PIPELINE, 'cpu', fuse=fuse, lookup=lookup)
            rows.append((f'CPU numpy/OpenCV{" fused" if fuse else ""}', median_ms(lambda: pre(img), repeats,
                                                                                  lambda: None)))
    for fuse in (False, True):
        pre = make(SPEED_PIPELINE, device, fuse)
        on_gpu = torch.from_numpy(img).to(torch_device)
        tag = ('CUDA' if device.startswith('cuda') else 'torch on CPU') + (' fused' if fuse else '')
        rows.append((f'{tag}, numpy image (upload included)', median_ms(lambda: pre(img), repeats, sync)))
        rows.append((f'{tag}, image already on the device', median_ms(lambda: pre(on_gpu), repeats, sync)))
    base = rows[0][1] if have('cv2') else None
    cpu_fused = rows[1][1] if have('cv2') else None
    print(f'\n## Speed: 1920x1080 -> 1333x750 resize + normalize + pad to 1344x768, median of {repeats}\n')
    name = torch.cuda.get_device_name(device) if device.startswith('cuda') else 'torch on CPU'
    print(f'torch {torch.__version__}, {name}'
          f', CPU threads {torch.get_num_threads()}\n')
    print('| path | ms | speed-up vs CPU (unfused) | vs CPU fused |')
    print('|---|---|---|---|')
    for label, ms in rows:
        up = f'{base / ms:.1f}x' if base else 'n/a (no OpenCV)'
        up_f = f'{cpu_fused / ms:.1f}x' if cpu_fused else 'n/a'
        print(f'| {label} | {ms:.3f} | {up} | {up_f} |')


def write_ref(path: str) -> None:
    if not (have('cv2') and have('PIL')):
        sys.exit('error: writing the reference needs OpenCV and Pillow')
    arrays = {}
    for name, (transforms, shape, _, _) in CASES.items():
        img = case_input(name, *shape)
        arrays[f'in/{name}'] = img
        arrays[f'out/{name}'] = to_host(build_preprocess(transforms, 'cpu', lookup=lookup)(img)[0])
    tmp = path + '.tmp.npz'
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)
    print(f'wrote {path} ({os.path.getsize(path) / 1e6:.1f} MB, {len(CASES)} cases)')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='cuda', help="'cuda', 'cuda:N' ('cpu' runs the torch path on CPU)")
    parser.add_argument('--repeats', type=int, default=50)
    parser.add_argument('--ref', default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                      'sdk_transforms_gpu_ref.npz'))
    parser.add_argument('--write-ref', metavar='PATH', help='write the CPU reference .npz (needs OpenCV) and exit')
    parser.add_argument('--skip-speed', action='store_true')
    args = parser.parse_args()
    if args.write_ref:
        write_ref(args.write_ref)
        return 0
    import torch

    device = args.device
    if device.startswith('cuda') and not torch.cuda.is_available():
        sys.exit('error: no CUDA device; run on the GPU machine (or --device cpu to check the torch path here)')
    if device == 'cpu':  # the CUDA code on CPU tensors
        device = 'cpu-torch'
    ok = equality_table(device, args.ref)
    if not args.skip_speed:
        speed_table(device, args.repeats)
    print('\nall equal within the stated tolerances' if ok else '\nSOME CASES DIFFER BEYOND THEIR TOLERANCE')
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
