# 224x224 input, traced with torch.jit.trace into end2end.pt.
_base_ = ['./classification_static.py', '../_base_/backends/torchscript.py']
onnx_config = dict(exporter='torchscript')  # torch.jit.trace records the model (the rewrites' TorchScript branch)
