# the legacy TorchScript exporter instead of torch.export (dynamo)
_base_ = ['./detection_onnxruntime_static.py']
onnx_config = dict(exporter='torchscript')
