"""Base class of task processors."""
from mmdeploy.codebase.base.task import BaseTask

__all__ = ['BaseTask']
