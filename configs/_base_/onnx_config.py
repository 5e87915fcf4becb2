# ONNX export settings shared by every deploy config.
onnx_config = dict(
    type='onnx',
    export_params=True,
    keep_initializers_as_inputs=False,
    opset_version=18,
    save_file='end2end.onnx',
    input_names=['input'],
    output_names=['output'],
    input_shape=None,
    optimize=True,
    # 'dynamo' (torch.export based, torch's default) or 'torchscript' (legacy)
    exporter='dynamo',
)
