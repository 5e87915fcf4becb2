# TorchScript: the rewritten model traced with torch.jit.trace into end2end.pt (no ONNX); runs on CPU or CUDA.
# onnx_config's names, input_shape and dynamic_axes apply; the configs set exporter='torchscript' (the tracer).
backend_config = dict(type='torchscript')
