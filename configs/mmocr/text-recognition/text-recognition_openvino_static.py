# mmocr text recognition on OpenVINO, 100x32 (width x height); see text-recognition_onnxruntime_static.py for
# the output (per-step class probabilities [N, T, C]) and why the TorchScript exporter is chosen.
_base_ = ['../../_base_/onnx_config.py', '../../_base_/backends/openvino.py']
onnx_config = dict(input_shape=[100, 32], exporter='torchscript')
codebase_config = dict(type='mmocr', task='TextRecognition')
