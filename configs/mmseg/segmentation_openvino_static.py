# 1024x512 (width x height) input, end to end
_base_ = ['./_base_/segmentation_static.py', '../_base_/backends/openvino.py']
