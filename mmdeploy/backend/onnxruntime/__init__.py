"""ONNX Runtime backend plugin (``backend_config.type = 'onnxruntime'``)."""
