_base_ = ['../_base_/onnx_config.py']
codebase_config = dict(type='mmpretrain', task='Classification')
onnx_config = dict(input_shape=[224, 224])
