"""Rewrites of one-stage detectors (RetinaNet, FCOS, SSD, YOLOv3, YOLOX, ...) for export."""
