"""The ``mmdeploy`` logger, with the original MMDeploy's ``get_root_logger``."""
from __future__ import annotations

import logging
import os
from typing import Optional, Union


def get_root_logger(log_file: Optional[str] = None, log_level: Union[int, str, None] = None) -> logging.Logger:
    """The ``'mmdeploy'`` logger (the one mmdeploy itself logs to).

    Args:
        log_file: also write records to this file (added once per file).
        log_level: set the logger's level (``logging.INFO``, ``'DEBUG'``, ...);
            None leaves it as it is.
    """
    logger = logging.getLogger('mmdeploy')
    if log_level is not None:
        logger.setLevel(logging.getLevelName(log_level.upper()) if isinstance(log_level, str) else log_level)
    if log_file is not None:
        path = os.path.abspath(log_file)
        if not any(getattr(h, 'baseFilename', None) == path for h in logger.handlers):
            handler = logging.FileHandler(path)
            handler.setFormatter(logging.Formatter('%(asctime)s - %(name)s - %(levelname)s - %(message)s'))
            logger.addHandler(handler)
    return logger


#: the original's other name
get_logger = get_root_logger
