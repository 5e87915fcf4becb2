"""Draw the synthetic demo image (demo/demo.png): no download needed.

Usage: python tools/make_demo_image.py [OUTPUT] [--size W H]
"""
import argparse

import cv2
import numpy as np


def make_demo_image(width: int = 480, height: int = 360, seed: int = 0) -> np.ndarray:
    """A BGR uint8 image with a gradient sky, ground and a few solid shapes."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, height)[:, None]
    sky = np.stack([200 + 55 * (1 - y), 160 + 60 * (1 - y), 90 + 40 * y], axis=-1)
    image = np.broadcast_to(sky, (height, width, 3)).astype(np.uint8).copy()
    image[int(height * 0.65):] = (60, 130, 70)
    cv2.circle(image, (int(width * 0.78), int(height * 0.2)), int(height * 0.09), (80, 220, 250), -1)
    cv2.rectangle(image, (int(width * 0.12), int(height * 0.38)), (int(width * 0.42), int(height * 0.72)),
                  (40, 40, 170), -1)
    pts = np.array([[int(width * 0.08), int(height * 0.40)], [int(width * 0.27), int(height * 0.18)],
                    [int(width * 0.46), int(height * 0.40)]], np.int32)
    cv2.fillPoly(image, [pts], (30, 60, 110))
    cv2.ellipse(image, (int(width * 0.66), int(height * 0.72)), (int(width * 0.12), int(height * 0.07)), 0, 0, 360,
                (20, 20, 20), -1)
    for _ in range(6):  # a few random blobs so every run of a detector sees texture
        cx, cy = int(rng.integers(0, width)), int(rng.integers(int(height * 0.7), height))
        cv2.circle(image, (cx, cy), int(rng.integers(5, 20)), tuple(int(c) for c in rng.integers(0, 255, 3)), -1)
    return image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('output', nargs='?', default='demo/demo.png')
    parser.add_argument('--size', nargs=2, type=int, default=(480, 360), metavar=('W', 'H'))
    args = parser.parse_args()
    cv2.imwrite(args.output, make_demo_image(*args.size))


if __name__ == '__main__':
    main()
