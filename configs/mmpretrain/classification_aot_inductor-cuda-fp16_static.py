# The fastest measured GPU path for a classifier (ResNet-50 on an H200: 0.39 ms at batch 1, 1.16 ms at batch 32):
# torch.export + AOTInductor compiled in float16 on the GPU machine (float32 inputs and outputs), weights frozen
# into the package (channels-last convolutions), convolutions fused with their ReLU (and residual add) by cuDNN,
# the package replayed as a CUDA graph (fixed shapes only).
# Deploy on the GPU machine: backend_config.device makes `mmdeploy deploy` use cuda without --device.
_base_ = ['./classification_static.py', '../_base_/backends/aot_inductor.py']
backend_config = dict(device='cuda', precision='FP16', freezing=True, fuse_conv_relu=True, cuda_graph=True)
# float16 keeps 11 significant bits: probabilities move by ~1e-4 (ResNet-50, logits of spread 3: 9.2e-05 at
# batch 1, 7.2e-04 at batch 32, tools/ort_gpu/README.md); a wrong layer moves them by 1e-2 or more
verify_config = dict(score_atol=5e-3)
