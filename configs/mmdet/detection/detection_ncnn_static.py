# ncnn: 320x320 input; the graph is cut after the dense head (ncnn has no TopK / NonMaxSuppression), so
# partition0.param / .bin return the head's raw maps (head.<output>.<level>) and mmdet's own decoding,
# top-k and NMS run in PyTorch on them (one-stage detectors: RetinaNet, FCOS, YOLOX, SSD, YOLOv3, ...)
_base_ = ['../_base_/base_static.py', '../../_base_/backends/ncnn.py']
onnx_config = dict(input_shape=[320, 320])  # [width, height]
partition_config = dict(type='single_stage_head', apply_marks=True)
