"""Single-stage instance segmentation (SOLOv2) for export: rewrites, batched matrix NMS, backend masks.

Each rewrite module is listed in the mmdet plugin's ``REWRITE_MODULES``.
"""
