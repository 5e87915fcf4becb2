_base_ = ['../_base_/onnx_config.py']
codebase_config = dict(type='mmpretrain', task='Classification')
onnx_config = dict(
    input_shape=None,
    dynamic_axes=dict(input=dict({0: 'batch', 2: 'height', 3: 'width'}), output=dict({0: 'batch'})),
)
