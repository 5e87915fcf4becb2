# Dynamic batch / height / width: the tracer records the sizes the model reads as operations.
_base_ = ['./classification_dynamic.py', '../_base_/backends/torchscript.py']
onnx_config = dict(exporter='torchscript')  # torch.jit.trace records the model (the rewrites' TorchScript branch)
