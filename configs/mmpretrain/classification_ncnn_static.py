# ncnn converts at a fixed size: 224x224 (width x height)
_base_ = ['./classification_static.py', '../_base_/backends/ncnn.py']
