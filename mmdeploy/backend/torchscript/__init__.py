"""TorchScript backend plugin (``backend_config.type = 'torchscript'``): the rewritten model traced with torch.jit."""
