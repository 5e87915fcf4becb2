_base_ = ['./segmentation_onnxruntime_static.py']
onnx_config = dict(exporter='torchscript')
