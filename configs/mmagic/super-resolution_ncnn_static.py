# ncnn: the graph takes the size of the image it was exported with (ncnn converts at a fixed shape)
_base_ = ['./super-resolution_static.py', '../_base_/backends/ncnn.py']
