# mmocr text recognition: the graph returns per-step class probabilities [N, T, C]; mmocr's postprocessor
# decodes them with the model's dictionary (written beside the model as dict_file.txt).
# input_shape is (width, height): 32x100 fits CRNN and SATRN; SAR's configs read 48 px high images
# (give input_shape=[160, 48] in a copy of this file for SAR).
_base_ = ['../../_base_/onnx_config.py', '../../_base_/backends/onnxruntime.py']
# TorchScript exporter: dynamo's exports of the recognisers' LSTMs answer wrongly at batch > 1 (CRNN: max abs
# diff 8e-3 in the probabilities, caught by the gate) and SAR's decoder does not export under dynamo
onnx_config = dict(input_shape=[100, 32], exporter='torchscript')
codebase_config = dict(type='mmocr', task='TextRecognition')
