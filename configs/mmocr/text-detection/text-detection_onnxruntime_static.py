# mmocr text detection: the graph returns the head's maps (DBNet: probability map [N, H, W]; PANet / PSENet:
# text and kernel logits [N, C, H, W]); polygons are extracted outside the graph by mmocr's postprocessor.
_base_ = ['../../_base_/onnx_config.py', '../../_base_/backends/onnxruntime.py']
onnx_config = dict(input_shape=[640, 640])
codebase_config = dict(type='mmocr', task='TextDetection')
