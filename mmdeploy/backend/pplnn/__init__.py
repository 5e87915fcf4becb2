"""OpenPPL backend plugin (``backend_config.type = 'pplnn'``), written against pplnn's ``pyppl.nn`` API."""
