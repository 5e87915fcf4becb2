# mmocr text recognition with dynamic batch and width (the height is the model's own, set by its test
# pipeline); see text-recognition_onnxruntime_static.py.
_base_ = ['../../_base_/onnx_config.py', '../../_base_/backends/onnxruntime.py']
# TorchScript exporter: dynamo's exports of the recognisers' LSTMs answer wrongly at batch > 1 (CRNN: max abs
# diff 8e-3 in the probabilities, caught by the gate) and SAR's decoder does not export under dynamo
onnx_config = dict(
    input_shape=None,
    exporter='torchscript',
    dynamic_axes=dict(
        input=dict({0: 'batch', 3: 'width'}),
        output=dict({0: 'batch', 1: 'seq_len'})))
codebase_config = dict(type='mmocr', task='TextRecognition')
