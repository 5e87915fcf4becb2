# mmocr text detection on OpenVINO (see text-detection_onnxruntime_static.py for the outputs).
_base_ = ['../../_base_/onnx_config.py', '../../_base_/backends/openvino.py']
onnx_config = dict(input_shape=[640, 640])
codebase_config = dict(type='mmocr', task='TextDetection')
