"""TensorRT backend plugin (``backend_config.type = 'tensorrt'``): ONNX -> serialized engine. Unverified here."""
