# two-stage detectors cut in two (see the 'two_stage' partition of mmdeploy.codebase.mmdet.plugin):
# partition0.onnx: input -> FPN features feat.0 ... and the RPN's NMS inputs (boxes, scores);
# partition1.onnx: RoI features bbox_feats -> box head (cls_score, bbox_pred).
# The RPN NMS and the RoI extraction run between them, outside the graphs.
_base_ = ['./detection_onnxruntime_static.py']
partition_config = dict(type='two_stage', apply_marks=True)
