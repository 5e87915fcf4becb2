_base_ = ['../_base_/base_static.py', '../../_base_/backends/openvino.py']
onnx_config = dict(input_shape=[320, 320])  # [width, height]
