"""mmpretrain codebase plugin (``codebase_config.type = 'mmpretrain'``)."""
