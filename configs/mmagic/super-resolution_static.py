# Super-resolution (mmagic), static shape: the graph takes the size of the image it was exported with.
# input_shape=[W, H] would resize every input to that size first (pipeline.json gets a Resize).
_base_ = ['../_base_/onnx_config.py']
codebase_config = dict(type='mmagic', task='SuperResolution')
onnx_config = dict(input_shape=None)
