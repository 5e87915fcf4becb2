_base_ = ['../_base_/base_static.py', '../../_base_/backends/onnxruntime.py']
onnx_config = dict(input_shape=[640, 640])  # [width, height]
