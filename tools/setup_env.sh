#!/usr/bin/env bash
# Create .venv with every pinned dependency of mmdeploy and install it (editable).
# Idempotent: a second run only checks. Needs Python 3.11 on x86_64 (see README, "Environment").
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
MMCV_WHEEL=mmcv-2.0.1-cp311-cp311-linux_x86_64.whl
SHARED_WHEEL=../shared/wheels/$MMCV_WHEEL
CACHE_WHEEL=.cache/wheels/$MMCV_WHEEL
PIP=(.venv/bin/pip install -q --disable-pip-version-check)
log() { printf '[setup] %s\n' "$*" >&2; }

[ -x .venv/bin/python ] || { log "creating .venv"; "$PY" -m venv .venv; }

# torch + torchvision first: pip takes both from this machine's local disk (a CUDA build that runs on CPU).
if ! .venv/bin/python -c 'import torch, torchvision; assert torch.__version__.startswith("2.14.1")' 2>/dev/null; then
  log "installing torch 2.14.1 + torchvision 0.29.1"
  "${PIP[@]}" torch==2.14.1 torchvision==0.29.1
fi

# full mmcv 2.0.1 (compiled ops): the prebuilt wheel where shared/ has it, else a source build (~9 min).
if ! .venv/bin/python -c 'import mmcv, mmcv.ops; assert mmcv.__version__ == "2.0.1"' 2>/dev/null; then
  if [ -f "$SHARED_WHEEL" ]; then
    wheel=$SHARED_WHEEL
  elif [ -f "$CACHE_WHEEL" ]; then
    wheel=$CACHE_WHEEL
  else
    log "no prebuilt mmcv wheel: building mmcv 2.0.1 from source (about 9 minutes on 2 cores)"
    "${PIP[@]}" -c requirements/constraints.txt wheel ninja numpy packaging addict yapf \
      opencv-python-headless mmengine==0.10.7 "setuptools<70"   # mmcv's setup.py needs pkg_resources
    root=$(pwd); build=$(mktemp -d)
    .venv/bin/pip download -q --no-deps --no-binary :all: -d "$build" mmcv==2.0.1
    tar xzf "$build"/mmcv-2.0.1.tar.gz -C "$build"
    # torch >= 2.10 headers need C++20
    sed -i 's/-std=c++17/-std=c++20/g; s/-std=c++14/-std=c++20/g' "$build/mmcv-2.0.1/setup.py"
    mkdir -p .cache/wheels
    (cd "$build/mmcv-2.0.1" && MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS=2 "$root/.venv/bin/pip" wheel -q \
      --no-build-isolation --no-deps . -w "$root/.cache/wheels")
    rm -rf "$build"
    wheel=$CACHE_WHEEL
  fi
  log "installing $wheel"
  "${PIP[@]}" -c requirements/constraints.txt "$wheel"
fi

log "installing pinned requirements"
"${PIP[@]}" -c requirements/constraints.txt -r requirements/runtime.txt -r requirements/codebases.txt \
  -r requirements/mmagic.txt -r requirements/tests.txt -r requirements/engines.txt
# mmagic without its full requirements (mediapipe, face-alignment, ...): see requirements/mmagic.txt
.venv/bin/python -c 'import mmagic' 2>/dev/null || "${PIP[@]}" --no-deps -c requirements/constraints.txt mmagic==1.2.0
"${PIP[@]}" --no-deps --no-build-isolation -e .
.venv/bin/python -c 'import mmcv.ops, mmpretrain, mmdet, mmseg, mmocr, mmagic, onnxruntime, mmdeploy; print("[setup] ok: mmdeploy", mmdeploy.__version__)' >&2
# headless Chromium for the HTML report test (~15 s; the test is skipped, saying why, when this fails)
bash tools/fetch_chromium.sh >/dev/null || log "chromium not fetched: tests/tools/test_cmd_report.py's browser check will skip"
