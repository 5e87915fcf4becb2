# 224x224 input; model_inputs' opt_shapes fix the IR's input shape, as in the original MMDeploy's configs.
_base_ = ['./classification_static.py', '../_base_/backends/openvino.py']
backend_config = dict(model_inputs=[dict(opt_shapes=dict(input=[1, 3, 224, 224]))])
