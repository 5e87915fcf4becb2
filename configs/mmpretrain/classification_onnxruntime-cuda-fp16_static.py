# ONNX Runtime's CUDA provider on a float16 graph (float32 inputs and outputs), replayed as a CUDA graph.
# Deploy on the GPU machine (backend_config.device makes `mmdeploy deploy` use cuda without --device).
_base_ = ['./classification_static.py', '../_base_/backends/onnxruntime.py']
backend_config = dict(device='cuda', precision='FP16', cuda_graph=True, cudnn_conv_algo_search='HEURISTIC')
# float16 keeps 11 significant bits: probabilities move by up to ~1e-3 of the largest logit's share (measured
# 2e-4 on ResNet-50, see tools/gpu/README.md); a wrong layer moves them by 1e-2 or more
verify_config = dict(score_atol=5e-3)
