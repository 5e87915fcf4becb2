"""ONNX export, graph passes and partition extraction."""
