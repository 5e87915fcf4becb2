_base_ = ['./super-resolution_static.py', '../_base_/backends/openvino.py']
