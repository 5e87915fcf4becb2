# mmdet end-to-end detection: the graph returns dets [N, K, 5] (x1, y1, x2, y2, score) and labels [N, K].
_base_ = ['../../_base_/onnx_config.py']
onnx_config = dict(output_names=['dets', 'labels'], input_shape=None)
codebase_config = dict(
    type='mmdet',
    task='ObjectDetection',
    model_type='end2end',
    # used where the model's test_cfg has no value of its own
    # (test_cfg score_thr, nms.iou_threshold, max_per_img, nms_pre, conf_thr win)
    post_processing=dict(
        score_threshold=0.05,
        confidence_threshold=0.005,  # YOLOv3 objectness
        iou_threshold=0.5,
        max_output_boxes_per_class=200,  # keep >= keep_top_k to get PyTorch's detections
        pre_top_k=5000,
        keep_top_k=100,
        background_label_id=-1,
    ))
