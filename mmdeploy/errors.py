"""Errors raised by mmdeploy's public entry points.

Every error a user can cause derives from :class:`MMDeployError`, so a CLI or a
service can tell "fix your input" apart from a bug. Each message names what to
fix.
"""


class MMDeployError(Exception):
    """Base class of every error mmdeploy raises on purpose."""


class ConfigError(MMDeployError, ValueError):
    """A deploy or model config is missing, unreadable or has a wrong key."""


class InputFileError(MMDeployError, FileNotFoundError):
    """A file given by the user (config, checkpoint, image, model) is unusable."""


class BackendUnavailableError(MMDeployError, RuntimeError):
    """A backend is unknown, or its Python package is not installed."""


class CodebaseUnavailableError(MMDeployError, RuntimeError):
    """A codebase is unknown, or its Python package is not installed."""


class RewriteError(MMDeployError, RuntimeError):
    """A rewrite could not be applied (for example its target does not exist)."""


class ExportError(MMDeployError, RuntimeError):
    """Exporting the PyTorch model to ONNX failed."""


class ModelFileError(MMDeployError, ValueError):
    """A model file (ONNX or backend file) is corrupt or of the wrong kind."""


class InputDataError(MMDeployError, ValueError):
    """Data given to a model at run time has the wrong type, shape or dtype."""


class PluginError(MMDeployError, RuntimeError):
    """A plugin broke a rule of the plugin contract (duplicate name, bad hook)."""


class UnsupportedModelError(MMDeployError, NotImplementedError):
    """The model (a class or method in it) is not covered by the registered rewrites or exporters."""
