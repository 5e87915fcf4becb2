"""Export of mmcv ops (NMS, RoIAlign, ...) for both torch exporters."""
