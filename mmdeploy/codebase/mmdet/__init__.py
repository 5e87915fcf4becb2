"""mmdet codebase: object detection and instance segmentation."""
