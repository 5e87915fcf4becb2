# mmseg semantic segmentation: the graph returns the per-pixel class map `output` [N, 1, H, W] (int64) at the
# input size; with codebase_config.with_argmax=False it returns the logits [N, num_classes, H, W] instead.
_base_ = ['../../_base_/onnx_config.py']
codebase_config = dict(type='mmseg', task='Segmentation', with_argmax=True)
# input_shape is (width, height)
onnx_config = dict(output_names=['output'], input_shape=[1024, 512])
