# ncnn: 1024x512 (width x height). The pip ncnn is built without its ArgMax layer, so the graph returns the
# logits (with_argmax=False) and the backend model resizes them and takes the argmax as mmseg does.
_base_ = ['./_base_/segmentation_static.py', '../_base_/backends/ncnn.py']
codebase_config = dict(with_argmax=False)
