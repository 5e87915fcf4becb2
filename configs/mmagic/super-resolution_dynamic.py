# Super-resolution (mmagic): dynamic batch, height and width, in and out.
_base_ = ['../_base_/onnx_config.py']
codebase_config = dict(type='mmagic', task='SuperResolution')
onnx_config = dict(
    input_shape=None,
    dynamic_axes=dict(input={0: 'batch', 2: 'height', 3: 'width'}, output={0: 'batch', 2: 'height', 3: 'width'}),
)
