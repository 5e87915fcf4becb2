"""Errors of the SDK: each names what to fix (all are :class:`mmdeploy.errors.MMDeployError`)."""
from __future__ import annotations

from mmdeploy.errors import MMDeployError


class SDKError(MMDeployError):
    """Base class of the SDK's errors."""


class SDKModelDirError(SDKError, FileNotFoundError):
    """The model folder, or a file it must hold (deploy.json, the net, ...), is missing or invalid."""


class SDKPipelineError(SDKError, ValueError):
    """pipeline.json names an unknown transform or component, or is malformed."""


class SDKInputError(SDKError, ValueError):
    """An image given to a handle has the wrong type, dtype, number of dimensions or channels."""


class SDKClosedError(SDKError, RuntimeError):
    """A handle was used after :meth:`~mmdeploy.sdk.handle.Handle.close`."""
