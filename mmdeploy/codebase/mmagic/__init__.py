"""mmagic codebase plugin (``codebase_config.type = 'mmagic'``): image super-resolution."""
