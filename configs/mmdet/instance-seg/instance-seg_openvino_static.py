# Mask R-CNN on OpenVINO (see instance-seg_onnxruntime_static.py for the outputs).
_base_ = ['../_base_/base_static.py', '../../_base_/backends/openvino.py']
onnx_config = dict(output_names=['dets', 'labels', 'masks'], input_shape=[320, 320])  # [width, height]
