# cut before the NMS: partition0.onnx returns boxes [N, K, 4] and scores [N, K, C]
_base_ = ['./detection_onnxruntime_static.py']
partition_config = dict(type='single_stage', apply_marks=True)
