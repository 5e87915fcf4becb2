# mmocr text detection with dynamic batch, height and width (see text-detection_onnxruntime_static.py).
_base_ = ['../../_base_/onnx_config.py', '../../_base_/backends/onnxruntime.py']
onnx_config = dict(
    input_shape=None,
    dynamic_axes=dict(
        input=dict({0: 'batch', 2: 'height', 3: 'width'}),
        output=dict({0: 'batch'})))
codebase_config = dict(type='mmocr', task='TextDetection')
