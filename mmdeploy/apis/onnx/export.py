"""Export a torch module to ONNX inside a RewriterContext, with either torch exporter."""
from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from mmdeploy.apis.onnx.interrupt import sticky_interrupt
from mmdeploy.core.rewriters.manager import RewriterContext
from mmdeploy.errors import ExportError, MMDeployError
from mmdeploy.utils.deploy_config import DYNAMO_MIN_OPSET, DeployConfig

logger = logging.getLogger('mmdeploy')

EXPORTERS = ('torchscript', 'dynamo')


def _dynamic_shapes(args: Tuple[Any, ...], input_names: Sequence[str],
                    dynamic_axes: Optional[Mapping[str, Any]]) -> Optional[Tuple[Any, ...]]:
    """``dynamic_axes`` of the inputs -> torch.export ``dynamic_shapes`` (one per arg)."""
    if not dynamic_axes:
        return None
    from torch.export import Dim

    shapes = []
    for index, _ in enumerate(args):
        name = input_names[index] if index < len(input_names) else None
        axes = dynamic_axes.get(name) if name else None
        if not axes:
            shapes.append(None)
            continue
        if isinstance(axes, Mapping):
            shapes.append({int(axis): Dim.AUTO for axis in axes})
        else:
            shapes.append({int(axis): Dim.AUTO for axis in axes})
    return tuple(shapes)


def export_onnx(model: Any, args: Tuple[Any, ...], output_file: str, deploy_cfg: Any = None,
                backend: str = 'default', input_names: Sequence[str] = ('input',),
                output_names: Sequence[str] = ('output',),
                dynamic_axes: Optional[Dict[str, Any]] = None, opset_version: int = 17,
                exporter: str = 'dynamo', verbose: bool = False, **context_kwargs: Any) -> str:
    """Export ``model(*args)`` to ``output_file`` with mmdeploy's rewrites applied.

    Args:
        model: the module to export (module rewrites are applied to it for the
            duration of the export and undone afterwards).
        args: example inputs.
        output_file: where to write the ONNX file (written atomically).
        deploy_cfg: deploy config, visible to rewrites as ``ctx.cfg``.
        backend: backend the graph is for; selects backend-specific rewrites.
        input_names / output_names: names of the graph's inputs and outputs.
        dynamic_axes: ``{name: {axis: label}}`` for dynamic dimensions.
        opset_version: ONNX opset.
        exporter: ``'dynamo'`` (torch.export based) or ``'torchscript'``
            (legacy, deprecated by torch but still supported).
        **context_kwargs: given to the RewriterContext (visible to rewrites).

    Returns:
        ``output_file``.

    Raises:
        ExportError: the export failed; the message names the exporter and
            the torch error, and no file is left behind.
        RewriteError: a rewrite could not be installed (e.g. its target does
            not exist); raised as is, naming the target.
    """
    import onnx
    import torch

    if exporter not in EXPORTERS:
        raise ExportError(f"unknown exporter {exporter!r}; use 'torchscript' or 'dynamo'")
    tmp = f'{output_file}.partial'
    interrupt = {'interrupted': False}
    input_names, output_names = list(input_names), list(output_names)
    try:
        # rewrites see the mmengine Config as ctx.cfg, also when given a parsed DeployConfig
        cfg = deploy_cfg.cfg if isinstance(deploy_cfg, DeployConfig) else deploy_cfg
        with RewriterContext(cfg, backend=backend, ir='onnx', opset=opset_version,
                             exporter=exporter, **context_kwargs) as ctx:
            patched = ctx.patch_model(model)
            with torch.no_grad(), warnings.catch_warnings():
                warnings.filterwarnings('ignore', category=DeprecationWarning)
                warnings.filterwarnings('ignore', message='.*shape inference of mmdeploy.*')
                if exporter == 'torchscript':
                    torch.onnx.export(patched, args, tmp, dynamo=False, input_names=input_names,
                                      output_names=output_names, dynamic_axes=dynamic_axes,
                                      opset_version=opset_version, do_constant_folding=True,
                                      verbose=verbose)
                else:
                    quiet = contextlib.redirect_stdout(io.StringIO()) if not verbose else contextlib.nullcontext()
                    with quiet, sticky_interrupt() as interrupt:
                        program = torch.onnx.export(
                            patched, args, dynamo=True, input_names=input_names,
                            output_names=output_names,
                            dynamic_shapes=_dynamic_shapes(args, input_names, dynamic_axes),
                            opset_version=max(opset_version, DYNAMO_MIN_OPSET), optimize=True,
                            custom_translation_table=ctx.translation_table or None, verbose=verbose)
                        if interrupt['interrupted']:  # torch swallowed every KeyboardInterrupt and went on
                            raise KeyboardInterrupt()
                    onnx_model = program.model_proto
                    _rename_dynamic_dims(onnx_model, dynamic_axes)
                    onnx.save(onnx_model, tmp)
        os.replace(tmp, output_file)
    except MMDeployError:  # e.g. RewriteError naming a missing target: keep its type
        raise
    except Exception as exc:
        if interrupt['interrupted'] or any(isinstance(e, KeyboardInterrupt) for e in _chain(exc)):
            # Ctrl-C landed inside torch.export, which wrapped it: stop as interrupted, not as a failed export
            raise KeyboardInterrupt() from exc
        cause = _root_cause(exc)
        if isinstance(cause, MMDeployError):  # raised by a rewrite, wrapped by torch
            # a new exception of the same type: re-raising ``cause`` itself with
            # ``from exc`` would make the exception chain a cycle
            raise type(cause)(str(cause)) from exc
        raise ExportError(f'{exporter} export to ONNX failed: {_first_line(cause)}'
                          f'{_other_exporter(exporter)}') from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return output_file


def _other_exporter(exporter: str) -> str:
    """What to try after a failed export: torch.export (dynamo) refuses code the TorchScript tracer records."""
    if exporter != 'dynamo':
        return ''
    return ("; the TorchScript exporter may export this model: add '--exporter torchscript' to the command "
            "line or set onnx_config.exporter='torchscript' in the deploy config (README, \"Exporters\")")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f'{type(exc).__name__}: {text.splitlines()[0] if text else ""}'


def _chain(exc: BaseException) -> list:
    """``exc`` and the exceptions it was raised from or during, outermost first."""
    seen, current = [], exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost exception of a chain: torch wraps the real error several times.

    An mmdeploy error anywhere in the chain wins, since it names what to fix.
    """
    seen = _chain(exc)
    for item in seen:
        if isinstance(item, MMDeployError):
            return item
    return seen[-1]


def _rename_dynamic_dims(model: Any, dynamic_axes: Optional[Mapping[str, Any]]) -> None:
    """Give dynamic dims of named inputs/outputs the labels of ``dynamic_axes``."""
    if not dynamic_axes:
        return
    values = {v.name: v for v in list(model.graph.input) + list(model.graph.output)}
    for name, axes in dynamic_axes.items():
        value = values.get(name)
        if value is None:
            continue
        labels = axes if isinstance(axes, Mapping) else {a: f'{name}_dim{a}' for a in axes}
        dims = value.type.tensor_type.shape.dim
        for axis, label in labels.items():
            if int(axis) < len(dims):
                dims[int(axis)].dim_param = str(label)
