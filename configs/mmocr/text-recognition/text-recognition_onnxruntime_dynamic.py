# mmocr text recognition with dynamic batch and width (the height is the model's own, set by its test
# pipeline); see text-recognition_onnxruntime_static.py.
_base_ = ['../../_base_/onnx_config.py', '../../_base_/backends/onnxruntime.py']
onnx_config = dict(
    input_shape=None,
    dynamic_axes=dict(
        input=dict({0: 'batch', 3: 'width'}),
        output=dict({0: 'batch', 1: 'seq_len'})))
codebase_config = dict(type='mmocr', task='TextRecognition')
