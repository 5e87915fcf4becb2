"""DETR-family detectors (DETR, Conditional DETR): transformer detectors without NMS."""
