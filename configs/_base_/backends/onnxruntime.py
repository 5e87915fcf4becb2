# ONNX Runtime on the CPU; set providers / intra_op_num_threads to change that.
backend_config = dict(type='onnxruntime')
