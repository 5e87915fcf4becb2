# mmdet instance segmentation (Mask R-CNN, Cascade Mask R-CNN): the graph returns dets [N, K, 5],
# labels [N, K] and masks [N, K, h, w] (each detection's mask probabilities at RoI resolution,
# pasted into the image and thresholded by the backend model).
_base_ = ['../_base_/base_static.py', '../../_base_/backends/onnxruntime.py']
onnx_config = dict(output_names=['dets', 'labels', 'masks'], input_shape=[320, 320])  # [width, height]
