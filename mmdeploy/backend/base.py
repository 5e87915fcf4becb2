"""Base classes every backend plugin implements."""
from __future__ import annotations

import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple


def backend_section(deploy_cfg: Any) -> Mapping[str, Any]:
    """``backend_config`` of ``deploy_cfg``; empty when either is None or absent."""
    section = deploy_cfg.get('backend_config', None) if deploy_cfg is not None else None
    return section or {}


def precision_of(deploy_cfg: Any) -> str:
    """``backend_config.precision`` upper-cased, ``'FP32'`` when not set."""
    return str(backend_section(deploy_cfg).get('precision', None) or 'FP32').upper()


class BaseBackendManager:
    """What mmdeploy needs from an engine: convert ONNX files and run them.

    A backend plugin registers a subclass through the ``mmdeploy_backends``
    hook and implements :meth:`to_backend` and :meth:`build_wrapper`; the
    other members have working defaults. Deploy config keys the engine reads
    are declared through the ``mmdeploy_config_keys`` hook.
    """

    #: the value of ``backend_config.type``
    name: str = ''
    #: custom ONNX ops (``'domain::Op'``) this engine runs; others are rejected before conversion, and a
    #: model whose modules export to one it lacks is refused before export (mmdeploy.mmcv.ops.required_ops)
    supported_custom_ops: Tuple[str, ...] = ()
    #: True for engines that run PyTorch programs (TorchScript, AOTInductor): deploy hands them the rewritten
    #: PyTorch model through :meth:`from_pytorch` instead of exporting ONNX and calling :meth:`to_backend`
    takes_pytorch_model: bool = False

    @classmethod
    def custom_ops_unavailable_reason(cls) -> Optional[str]:
        """None when :attr:`supported_custom_ops` can run here, else why not (e.g. an op library not built)."""
        return None

    @classmethod
    def to_backend(cls, onnx_files: Sequence[str], work_dir: str, deploy_cfg: Any,
                   device: str = 'cpu') -> List[str]:
        """Convert ONNX files into the engine's format, writing into ``work_dir``.

        Returns the paths of the files written (one model may be several
        files). Implementations write to temporary names and rename when
        complete, so a failure leaves nothing half-written.
        """
        raise NotImplementedError

    @classmethod
    def from_pytorch(cls, module: Any, args: Tuple[Any, ...], work_dir: str, deploy_cfg: Any, device: str = 'cpu',
                     input_names: Sequence[str] = ('input',), output_names: Sequence[str] = ('output',),
                     dynamic_axes: Optional[Dict[str, Any]] = None) -> List[str]:
        """Write the engine's files for ``module(*args)`` (only when :attr:`takes_pytorch_model`).

        Called inside the RewriterContext of the export (the module is the
        task's rewritten export module, ``args`` the example input), by
        :func:`mmdeploy.apis.pytorch2backend.export_task_model_to_backend`.
        Returns the paths written into ``work_dir``.
        """
        raise NotImplementedError

    @classmethod
    def build_wrapper(cls, backend_files: Sequence[str], device: str = 'cpu',
                      deploy_cfg: Any = None, input_names: Optional[Sequence[str]] = None,
                      output_names: Optional[Sequence[str]] = None) -> 'BaseWrapper':
        """Load backend files into a :class:`BaseWrapper` ready to run."""
        raise NotImplementedError

    @classmethod
    def sdk_model_files(cls, backend_files: Sequence[str]) -> Dict[str, str]:
        """The ``net`` and ``weights`` entries of deploy.json for what :meth:`to_backend` wrote.

        Default: the first file is the net, there is no separate weights file
        (an engine with a weights file beside the graph overrides this).
        """
        return {'net': os.path.basename(backend_files[0]) if backend_files else '', 'weights': ''}

    @classmethod
    def run_precision(cls, backend_files: Sequence[str], deploy_cfg: Any, device: str = 'cpu') -> str:
        """The arithmetic precision the engine runs ``backend_files`` at (``'FP32'``, ``'BF16'``, ...).

        deploy.json's ``precision`` and ``mmdeploy deploy``'s output report it.
        Default: ``backend_config.precision``, ``'FP32'`` when not set. An engine
        that may run at another precision than the one asked for (OpenVINO
        picks bf16 on CPUs that have it) reads it back from the engine.
        """
        return precision_of(deploy_cfg)


class BaseWrapper:
    """A loaded backend model: named inputs in, named outputs out.

    ``forward`` accepts numpy arrays or torch tensors and returns outputs of
    the same kind as the inputs (torch in, torch out).
    """

    input_names: List[str]
    output_names: List[str]

    def forward(self, inputs: Mapping[str, Any]) -> Dict[str, Any]:
        """Run the model on ``{input_name: array}``; return ``{output_name: array}``."""
        raise NotImplementedError

    def __call__(self, inputs: Mapping[str, Any]) -> Dict[str, Any]:
        return self.forward(inputs)

    def check_named_inputs(self, inputs: Any, handle: Any, known: Optional[Sequence[str]] = None) -> bool:
        """Check ``inputs`` before a run: the wrapper is open (``handle`` not None), ``inputs`` a dict naming every
        input and nothing else (``known``: accepted names, default :attr:`input_names`).

        Returns:
            True when any value is a torch tensor (the outputs then go back as torch tensors).

        Raises:
            InputDataError: with what to change.
        """
        from mmdeploy.errors import InputDataError

        if handle is None:
            raise InputDataError(f'this {type(self).__name__} was closed; build a new one to run the model')
        if not isinstance(inputs, Mapping):
            raise InputDataError(f'inputs must be a dict {{name: array}} with names {self.input_names}, '
                                 f'got {type(inputs).__name__}')
        known = self.input_names if known is None else known
        missing = [n for n in self.input_names if n not in inputs]
        unknown = [n for n in inputs if n not in known]
        if missing or unknown:
            raise InputDataError(f'inputs must be named {self.input_names}; missing {missing}, unknown {unknown}')
        return any(type(v).__module__.startswith('torch') for v in inputs.values())

    def close(self) -> None:
        """Release the engine's resources (no-op by default)."""

    def __enter__(self) -> 'BaseWrapper':
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
