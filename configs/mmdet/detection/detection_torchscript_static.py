# RetinaNet & co. at a 320x320 input, traced with torch.jit.trace into end2end.pt (NMS as mmdeploy's torch op).
_base_ = ['../_base_/base_static.py', '../../_base_/backends/torchscript.py']
onnx_config = dict(input_shape=[320, 320], exporter='torchscript')  # [width, height]; torch.jit.trace records it

