"""OpenVINO backend plugin (``backend_config.type = 'openvino'``)."""
