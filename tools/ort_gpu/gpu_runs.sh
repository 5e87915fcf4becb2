#!/usr/bin/env bash
# The GPU runs behind README's "GPU engines measured" tables, queued in the background on the lent GPU machine
# so that they go on while later device calls carry ONNX Runtime's parts (see README.md here, "Issue 17
# runs (2026-12-02 evening and 2026-12-03)").
#   start [all|aoti]  copy the repository to ~/gpu/repo (a later call's copy of the working tree cannot change it
#               under the running jobs) and start the queue there; the jobs wait for the mmcv build (deploy
#               imports mmdet, which needs mmcv's ops), the ONNX Runtime ones also for device_steps.sh ort;
#               'aoti' runs only the AOTInductor jobs (no ONNX Runtime parts to carry), 'all' is the default
#   wait [S]    wait up to S seconds (default 540) for the queue to finish; print its log; logs and JSON to $OUT/runs.tgz
#   jobs [all|aoti]  the queue itself (what start runs)
set -uo pipefail
G=$HOME/gpu
Q=$G/runs
R=$G/repo
case "${1:-}" in
start)
  mkdir -p "$Q"; rm -rf "$R"; mkdir -p "$R"
  tar cf - --exclude=./.gpu . | tar xf - -C "$R"
  (cd "$R" && setsid nohup bash tools/ort_gpu/gpu_runs.sh jobs "${2:-all}" > "$Q/queue.log" 2>&1 < /dev/null &)
  sleep 2; cat "$Q/queue.log" ;;
jobs)
  which=${2:-all}
  eval "$(bash tools/ort_gpu/device_steps.sh env)"
  export PYTHONFAULTHANDLER=1
  B="python3 tools/ort_gpu/benchmark_gpu.py"
  job() {
    local name=$1 start; shift; start=$(date +%s); echo "== $name: $* ($(date +%T))"
    "$@" > "$Q/$name.log" 2>&1; local rc=$?; echo "== $name: rc=$rc in $(( $(date +%s) - start )) s"
    return $rc
  }
  bash tools/ort_gpu/device_steps.sh wait 900 || { echo "== the mmcv build failed: no runs"; exit 1; }
  # AOTInductor first checked on its own (a package built with the machine's /opt/gcc g++ crashed as it
  # loaded on 2026-12-03; device_steps.sh env sets the system compiler); when it fails, diagnose says how
  job aoti_probe python3 tools/ort_gpu/aoti_probe.py 1 0
  AOTI=$?
  [ "$AOTI" = 0 ] || job aoti_diagnose python3 tools/ort_gpu/aoti_probe.py diagnose
  # issue 17's batch-32 goal first: frozen + CUDA graph in fp16, alone, with cuDNN's fused convolution + ReLU
  # (fuse_conv_relu: 1.244 ms against 2.411 ms unfused in fusion_probe.py, 2026-12-03 evening) and with
  # Inductor's coordinate descent tuning; max_autotune (281 s to compile, slower) and cuDNN benchmark (slower)
  # left out
  [ "$AOTI" = 0 ] && job resnet50_b32_aoti $B --cases resnet50:32 --skip compile \
    --only '^aot_inductor fp16 \+ frozen( \+ coordinate descent)?( \+ cuDNN conv\+ReLU)? \+ CUDA graph$' \
    --json "$Q/resnet50_b32_aoti.json"
  [ "$AOTI" = 0 ] && job resnet50_b1_aoti $B --cases resnet50:1 --skip compile \
    --only '^aot_inductor fp16 \+ frozen( \+ cuDNN conv\+ReLU)? \+ CUDA graph$' --json "$Q/resnet50_b1_aoti.json"
  [ "$AOTI" = 0 ] && job retina_aoti $B --cases retinanet_r50:1 --repeats 30 --warmup 5 --skip compile \
    --only '^aot_inductor fp16 \+ frozen( \+ cuDNN conv\+ReLU)?$' --json "$Q/retina_aoti.json"
  if [ "$which" != aoti ]; then
    while [ ! -f "$G/ort.ok" ]; do sleep 2; done
    job retina_ort $B --cases retinanet_r50:1 --repeats 30 --warmup 5 --skip compile --only '^onnxruntime' \
      --json "$Q/retina_ort.json"
    job resnet50_b32_ts $B --cases resnet50:32 --skip compile --only '^torchscript' --json "$Q/resnet50_b32_ts.json"
    job retina_ts $B --cases retinanet_r50:1 --repeats 30 --warmup 5 --skip compile --only '^torchscript' \
      --json "$Q/retina_ts.json"
  fi
  touch "$Q/done" ;;
wait)
  for _ in $(seq "${2:-540}"); do [ -f "$Q/done" ] && break; sleep 1; done
  cat "$Q/queue.log"; [ -n "${OUT:-}" ] && tar czf "$OUT/runs.tgz" -C "$Q" $(cd "$Q" && ls *.log *.json 2>/dev/null)
  for f in "$Q"/*.log; do [ "$f" = "$Q/queue.log" ] || { echo "-- $(basename "$f")"; tail -n 4 "$f" | cut -c1-400; }; done ;;
*)
  sed -n 2,7p "$0"; exit 2 ;;
esac
