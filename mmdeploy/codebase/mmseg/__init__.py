"""mmseg codebase plugin (``codebase_config.type = 'mmseg'``): semantic segmentation."""
