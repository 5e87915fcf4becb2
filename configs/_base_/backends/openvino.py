# OpenVINO on the CPU in float32: OpenVINO itself would pick bf16 on CPUs that have it. precision='BF16' (or
# 'FP16', which this CPU runs as bf16) trades accuracy for speed; num_threads=N sets INFERENCE_NUM_THREADS.
backend_config = dict(type='openvino', precision='FP32')
