_base_ = ['./super-resolution_dynamic.py', '../_base_/backends/onnxruntime.py']
