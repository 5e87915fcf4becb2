_base_ = ['./segmentation_onnxruntime_dynamic.py']
onnx_config = dict(exporter='torchscript')
