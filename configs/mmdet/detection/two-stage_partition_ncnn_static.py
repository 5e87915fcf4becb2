# ncnn, two-stage detectors (Faster R-CNN): partition0.param returns the FPN levels and the RPN head's raw maps,
# partition1.param the box head on the exported number of RoI features (the RPN's max_per_img: ncnn converts at
# a fixed shape, RoIs run in chunks of it). mmdet's RPN decoding / NMS, RoI extraction and box decoding / NMS
# run in PyTorch (mmdeploy.codebase.mmdet.two_stage.head_partition_model).
_base_ = ['./detection_ncnn_static.py']
partition_config = dict(type='two_stage_head', apply_marks=True)
