# 320x320 input, torch.export + AOTInductor into end2end.pt2, compiled for the deploy device (minutes on a CPU).
_base_ = ['../_base_/base_static.py', '../../_base_/backends/aot_inductor.py']
onnx_config = dict(input_shape=[320, 320])  # [width, height]
