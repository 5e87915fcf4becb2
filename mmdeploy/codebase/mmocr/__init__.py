"""mmocr 1.x plugin: text detection and text recognition (and the det -> rec pair in ``ocr_pair``)."""
