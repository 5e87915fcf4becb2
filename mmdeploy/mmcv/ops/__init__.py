"""Export of mmcv ops (NMS, RoIAlign, ...) for both torch exporters."""
from mmdeploy.mmcv.ops.nms import multiclass_nms, topk_at_most

__all__ = ['multiclass_nms', 'topk_at_most']
