# AOTInductor: the rewritten model exported with torch.export and compiled into end2end.pt2 for the deploy
# device (deploy on the machine that runs it). precision='FP16' / 'BF16' compiles the model in that dtype.
# onnx_config's names, input_shape and dynamic_axes apply; exporter 'dynamo' (torch.export records it).
backend_config = dict(type='aot_inductor', precision='FP32')
