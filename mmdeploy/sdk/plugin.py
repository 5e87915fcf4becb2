"""Built-in plugin of the SDK: registers its transforms, postprocessors and task handles."""
from __future__ import annotations

from typing import Callable

from mmdeploy.hookspecs import hookimpl


@hookimpl
def mmdeploy_sdk_components(register: Callable[..., None]) -> None:
    """Register the built-in transforms, postprocess components and handles (all lazy)."""
    from mmdeploy.sdk import postprocess, tasks, transforms

    transforms.register_all(register)
    postprocess.register_all(register)
    tasks.register_all(register)
