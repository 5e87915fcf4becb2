# ncnn with dynamic batch, height and width. pnnx writes the .param at one shape (input_shapes below); ncnn has no
# batch axis (the wrapper runs a batch image by image) and its convolution / pooling layers take any size, so the
# same .param runs other sizes as long as no layer of the graph fixes one (deploy's second-shape run checks it).
_base_ = ['./classification_dynamic.py', '../_base_/backends/ncnn.py']
backend_config = dict(input_shapes=dict(input=[1, 3, 224, 224]))
