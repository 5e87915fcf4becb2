# ONNX Runtime's CUDA provider on a float16 graph at 1344x800 (mmdet's test size). TopK, box decoding and NMS
# stay float32 (mmdeploy/backend/onnxruntime/fp16.py). Deploy on the GPU machine.
_base_ = ['../_base_/base_static.py', '../../_base_/backends/onnxruntime.py']
onnx_config = dict(input_shape=[1344, 800])  # [width, height]
backend_config = dict(device='cuda', precision='FP16', cudnn_conv_algo_search='HEURISTIC')
# float16 features move box regressions by ~1e-3 of their value (sub-pixel at this size) and scores by ~1e-3
verify_config = dict(box_atol=2.0, score_atol=1e-2)
