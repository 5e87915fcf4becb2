"""mmdeploy: deploy OpenMMLab models to inference engines.

``import mmdeploy`` is kept cheap: it imports neither torch nor any plugin.
Public entry points live in :mod:`mmdeploy.apis` and :mod:`mmdeploy.core`.
"""
from mmdeploy.version import __version__

__all__ = ['__version__']
