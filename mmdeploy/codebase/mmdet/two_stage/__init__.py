"""Rewrites of two-stage detectors (Faster / Cascade / Mask R-CNN) for export.

Each module rewrites one mmdet component; :data:`REWRITE_MODULES` lists them
for the mmdet plugin's ``mmdeploy_rewrites`` hook (importing a module
registers its rewrites).
"""

REWRITE_MODULES = (
    'mmdeploy.codebase.mmdet.two_stage.roi_extractor',
)
