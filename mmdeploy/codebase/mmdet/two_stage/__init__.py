"""Rewrites of two-stage detectors (Faster / Cascade / Mask R-CNN) for export.

Each module rewrites one mmdet component and is listed in the mmdet plugin's
``REWRITE_MODULES`` (importing a module registers its rewrites).
"""
