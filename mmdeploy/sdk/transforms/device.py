"""Where a transform runs: numpy / OpenCV on the host, or torch tensors on a device."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

from mmdeploy.sdk.errors import SDKPipelineError


@dataclass(frozen=True)
class Device:
    """A resolved device.

    Attributes:
        name: the public name (``'cpu'``, ``'cuda'``, ``'cuda:1'``).
        use_torch: the torch implementation runs (CUDA; or, for tests, torch on
            the CPU, see :func:`resolve_device`).
        torch_device: the torch device string when ``use_torch``.
    """

    name: str
    use_torch: bool
    torch_device: str = 'cpu'

    def tensor(self, value: Any, dtype: Any = None) -> Any:
        """``value`` as a torch tensor on this device."""
        import torch

        return torch.as_tensor(value, dtype=dtype, device=self.torch_device)


def resolve_device(device: Union[str, Device] = 'cpu', torch_on_cpu: bool = False) -> Device:
    """Resolve a public device name.

    ``'cpu'`` runs the numpy / OpenCV implementations, ``'cuda'`` / ``'cuda:N'``
    the torch ones on that GPU. ``torch_on_cpu=True`` runs the torch
    implementations on CPU tensors: the same code as CUDA, which is how the
    CUDA logic is tested on a machine without a GPU.
    """
    if isinstance(device, Device):
        return device
    name = str(device)
    if name == 'cpu':
        return Device('cpu', True, 'cpu') if torch_on_cpu else Device('cpu', False)
    if name == 'cuda' or (name.startswith('cuda:') and name[5:].isdigit()):
        return Device(name, True, name)
    raise SDKPipelineError(f"unknown device {name!r}: use 'cpu', 'cuda' or 'cuda:N'")
