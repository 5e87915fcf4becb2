"""DETR-family detectors (DETR, Conditional DETR, Deformable DETR, DINO): transformer detectors without NMS."""
