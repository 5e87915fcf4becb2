"""ncnn backend plugin (``backend_config.type = 'ncnn'``): pnnx converts, the ncnn Python binding runs."""
