# ncnn on the CPU through pnnx (ONNX -> .param / .bin). precision 'FP32' (default) or 'FP16'
# (float16 weights and ncnn's fp16 storage / arithmetic); num_threads: ncnn's threads (default all cores).
backend_config = dict(type='ncnn', precision='FP32')
