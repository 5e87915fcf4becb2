# Dynamic batch / height / width, traced with torch.jit.trace into end2end.pt.
_base_ = ['../_base_/base_dynamic.py', '../../_base_/backends/torchscript.py']
onnx_config = dict(exporter='torchscript')  # torch.jit.trace records the model (the rewrites' TorchScript branch)
