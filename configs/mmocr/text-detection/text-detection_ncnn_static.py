# mmocr text detection on ncnn, 640x640 (ncnn converts at a fixed size; see text-detection_onnxruntime_static.py
# for the outputs). Polygons are extracted outside the graph by mmocr's postprocessor.
_base_ = ['../../_base_/onnx_config.py', '../../_base_/backends/ncnn.py']
onnx_config = dict(input_shape=[640, 640])
codebase_config = dict(type='mmocr', task='TextDetection')
