# ONNX Runtime's CUDA provider on a float16 graph (float32 inputs and outputs), replayed as a CUDA graph.
# Deploy on the GPU machine (backend_config.device makes `mmdeploy deploy` use cuda without --device).
_base_ = ['./classification_static.py', '../_base_/backends/onnxruntime.py']
# prefer_nhwc: channels-last convolutions (ResNet-50 on an H200: 0.52 ms instead of 0.76 at batch 1, 2.09 instead
# of 2.75 at batch 32, measured with cuDNN's default exhaustive algorithm search)
backend_config = dict(device='cuda', precision='FP16', cuda_graph=True, prefer_nhwc=True)
# float16 keeps 11 significant bits: probabilities move by up to ~1e-3 of the largest logit's share (measured
# 2e-4 on ResNet-50, see tools/ort_gpu/README.md); a wrong layer moves them by 1e-2 or more
verify_config = dict(score_atol=5e-3)
