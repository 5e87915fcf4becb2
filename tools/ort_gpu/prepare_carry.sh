#!/usr/bin/env bash
# Prepare, here, what the lent GPU machine lacks for `mmdeploy deploy ... --device cuda`, in .gpu/ (ignored by git):
#   .gpu/ort-part-a..d  onnxruntime-gpu 1.31.1 (CUDA 13), xz-compressed and split to travel one part per call
#   .gpu/whl/           pure-Python / cp312 wheels of the OpenMMLab packages and their missing dependencies
#   .gpu/src/           the mmcv 2.0.1 sdist, compiled there with CUDA (mmdet needs mmcv.ops)
# Usage: tools/ort_gpu/prepare_carry.sh [PART_MiB]   (default 49: a part + whl + src + the repo stay under 64 MiB)
set -euo pipefail
cd "$(dirname "$0")/../.."
part=${1:-49}
mkdir -p .gpu/whl .gpu/src
quiet() { grep -v '^WARNING: Location' || true; }

if ! ls .gpu/ort-part-a >/dev/null 2>&1; then
  ../shared/gpu/ort-gpu-parts.sh .gpu "$part" | quiet
fi

# the machine has torch 2.11, numpy 2, onnx, onnxscript, opencv, scipy, matplotlib, rich, pluggy, ...; not these
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .gpu/whl \
  mmengine==0.10.7 mmpretrain==1.2.0 mmdet==3.1.0 onnxslim==0.1.98 \
  addict==2.4.0 yapf==0.43.0 platformdirs==4.14.8 termcolor==3.3.0 terminaltables==3.1.10 \
  pycocotools==2.0.11 shapely==2.2.0 model-index==0.1.11 ordered-set==4.1.0 \
  importlib-metadata==10.2.0 lazy-importer==0.1.0 mat4py==0.6.0 2>&1 | quiet

# pip reads the sdist's metadata by running its setup.py, which imports pkg_resources: setuptools < 70
if [ ! -f .gpu/src/mmcv-2.0.1.tar.gz ]; then
  venv=$(mktemp -d)
  python3 -m venv "$venv" && "$venv/bin/pip" install -q "setuptools<70" wheel 2>&1 | quiet
  "$venv/bin/pip" download -q --no-deps --no-binary :all: --no-build-isolation -d .gpu/src mmcv==2.0.1 2>&1 | quiet
  rm -rf "$venv"
fi
du -sh .gpu/ort-part-* .gpu/whl .gpu/src
