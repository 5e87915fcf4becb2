# OpenVINO, two-stage detectors (Faster R-CNN) cut in two, as two-stage_partition_onnxruntime_static.py:
# partition0.xml: input -> FPN features feat.0 ... and the RPN's NMS inputs (boxes, scores);
# partition1.xml: RoI features bbox_feats (dynamic RoI count) -> box head (cls_score, bbox_pred).
# The RPN NMS and the RoI extraction run between them, outside the graphs.
_base_ = ['./detection_openvino_static.py']
partition_config = dict(type='two_stage', apply_marks=True)
