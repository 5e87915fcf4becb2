#!/usr/bin/env bash
# Steps run ON the lent GPU machine (through the device tool), from the repository root; see README.md.
#   start   install .gpu/whl into ~/gpu/site, keep .gpu/ort-part-*, start the mmcv CUDA build in the background
#   part    keep the .gpu/ort-part-* of this call; show the build's progress
#   ort     unpack onnxruntime-gpu (all parts there) into ~/gpu/ort and list its providers
#   wait S  wait up to S seconds for the mmcv build; exit 1 if it failed or is not done
#   env     print the PYTHONPATH line that puts all of it in front of the machine's packages, and the system
#           C++ compiler for AOTInductor (CXX)
set -uo pipefail
G=$HOME/gpu
MMCV=$G/mmcv/mmcv-2.0.1
progress() {
  local done=0 total
  total=$(find "$MMCV/mmcv/ops/csrc/pytorch" -name '*.cpp' -o -name '*.cu' 2>/dev/null | wc -l)
  [ -d "$MMCV/build" ] && done=$(find "$MMCV/build" -name '*.o' | wc -l)
  echo "mmcv build: $done of $total objects; rc=$(cat $G/mmcv/build.rc 2>/dev/null || echo running)"
  tail -n 2 "$G/mmcv/build.log" 2>/dev/null | cut -c1-300
}
case "${1:-}" in
start)
  mkdir -p "$G/parts" "$G/site" "$G/mmcv" "$G/ort"
  cp .gpu/ort-part-* "$G/parts/"
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$G/site" .gpu/whl/*.whl || exit 1
  # the machine's transformers 5 lacks what mmpretrain 1.2.0's multimodal models import ('NoneType takes no
  # arguments' when mmpretrain.models is imported): leave those models out, classifiers do not need them
  sed -i 's/^WITH_MULTIMODAL = all(/WITH_MULTIMODAL = False and all(/' "$G/site/mmpretrain/utils/dependency.py"
  tar xzf .gpu/src/mmcv-2.0.1.tar.gz -C "$G/mmcv"
  # torch >= 2.10 headers need C++20; no pkg_resources in the new setuptools
  sed -i 's/-std=c++14/-std=c++20/g; s/-std=c++17/-std=c++20/g' "$MMCV/setup.py"
  sed -i 's/^from pkg_resources import .*/from importlib.metadata import PackageNotFoundError as DistributionNotFound, distribution as get_distribution\nfrom packaging.version import parse as parse_version/' "$MMCV/setup.py"
  (cd "$MMCV" && setsid nohup bash -c 'start=$(date +%s); MMCV_WITH_OPS=1 FORCE_CUDA=1 MAX_JOBS=${MAX_JOBS:-16} TORCH_CUDA_ARCH_LIST=9.0 python3 setup.py build_ext --inplace > ../build.log 2>&1; rc=$?; echo "build took $(( $(date +%s) - start )) s" >> ../build.log; echo $rc > ../build.rc' >/dev/null 2>&1 </dev/null &)
  python3 --version; nproc; nvidia-smi -L; nvcc --version | tail -n 1; gcc --version | head -n 1
  python3 -c 'import torch, numpy, setuptools, onnx, onnxscript; print("torch", torch.__version__, torch.version.cuda, "numpy", numpy.__version__, "setuptools", setuptools.__version__, "onnx", onnx.__version__, "onnxscript", onnxscript.__version__)'
  PYTHONPATH=$MMCV:$G/site python3 -c 'import mmengine, mmcv, mmcv.transforms, onnxslim, pycocotools.coco, shapely; print("imports ok (numpy 2): mmengine", mmengine.__version__, "mmcv", mmcv.__version__)'
  sleep 20; progress ;;
part)
  mkdir -p "$G/parts"; cp .gpu/ort-part-* "$G/parts/"; ls "$G/parts"; progress ;;
ort)
  cp .gpu/ort-part-* "$G/parts/" 2>/dev/null
  [ -f .gpu/ort.sha256 ] && { [ "$(cat $G/parts/ort-part-* | sha256sum | cut -c1-64)" = "$(cat .gpu/ort.sha256)" ] || { echo "ORT parts damaged"; exit 1; }; }
  cat "$G"/parts/ort-part-* | xz -T0 -d | tar xf - -C "$G/ort" || exit 1
  PYTHONPATH=$G/ort python3 -c 'import onnxruntime as o; print("onnxruntime", o.__version__, o.get_available_providers())' \
    && touch "$G/ort.ok"  # what gpu_runs.sh waits for
  progress ;;
wait)
  for _ in $(seq "${2:-300}"); do [ -f "$G/mmcv/build.rc" ] && break; sleep 1; done
  progress
  [ "$(cat $G/mmcv/build.rc 2>/dev/null)" = 0 ] || { grep -m 5 -B 2 -A 8 'error' "$G/mmcv/build.log" | cut -c1-400; exit 1; } ;;
env)
  echo "export PYTHONPATH=$MMCV:$G/site:$G/ort:$PWD"
  # the machine sets CXX=/opt/gcc/bin/g++ (another GCC 13 build): AOTInductor packages that Inductor compiled
  # with it crash when loaded (segmentation fault, 2026-12-03); with the system g++ they load and run
  [ -x /usr/bin/g++ ] && echo "export CXX=/usr/bin/g++ CC=/usr/bin/gcc" ;;
*)
  sed -n 2,8p "$0"; exit 2 ;;
esac
