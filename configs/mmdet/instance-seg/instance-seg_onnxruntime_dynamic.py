# mmdet instance segmentation with dynamic batch and image size; see instance-seg_onnxruntime_static.py.
_base_ = ['../_base_/base_dynamic.py', '../../_base_/backends/onnxruntime.py']
onnx_config = dict(
    output_names=['dets', 'labels', 'masks'],
    dynamic_axes=dict(masks=dict({0: 'batch', 1: 'num_dets'})))
