"""AOTInductor backend plugin (``backend_config.type = 'aot_inductor'``): torch.export + AOTInductor package."""
