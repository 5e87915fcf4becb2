"""Partition marks: tag tensors at function boundaries so a model can be cut later.

``@mark('extract_feat', inputs=['img'], outputs=['feat'])`` on a function makes
every export through ``torch2onnx`` emit one ``mmdeploy::Mark`` node per
marked tensor, with attributes ``func``, ``func_id`` (the n-th call of that
function in the model), ``type`` (``'input'`` or ``'output'``), ``name`` and
``id`` (position among that call's marked inputs, or outputs). Outside an
export the decorator costs one check and changes nothing. After export the
marks are removed by
:func:`mmdeploy.apis.onnx.passes.remove_marks` unless a partition is asked for,
in which case :func:`mmdeploy.apis.onnx.partition.extract_partition` cuts the
graph at them.
"""
from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, List, Optional, Sequence

MARK_OP = 'mmdeploy::mark'
MARK_DOMAIN = 'mmdeploy'
MARK_TYPE = 'Mark'

_op_defined = False


def _define_op() -> None:
    """Define the torch custom op ``mmdeploy::mark`` once (identity in eager mode)."""
    global _op_defined
    if _op_defined:
        return
    import torch

    @torch.library.custom_op(MARK_OP, mutates_args=(), schema=(
        '(Tensor x, str func, int func_id, str type, str name, int id) -> Tensor'))
    def mark_op(x, func, func_id, type, name, id):  # noqa: ANN001
        return x.clone()

    @mark_op.register_fake
    def _(x, func, func_id, type, name, id):  # noqa: ANN001
        return torch.empty_like(x)

    _op_defined = True


def mark_tensors(value: Any, func: str, func_id: int, io_type: str, name: str, index: List[int]) -> Any:
    """Apply the mark op to every tensor in a nested tuple / list / dict."""
    import torch

    if isinstance(value, torch.Tensor):
        marked = torch.ops.mmdeploy.mark(value, func, func_id, io_type, name, index[0])
        index[0] += 1
        return marked
    if isinstance(value, (list, tuple)):
        items = [mark_tensors(v, func, func_id, io_type, f'{name}.{i}', index) for i, v in enumerate(value)]
        return type(value)(*items) if hasattr(value, '_fields') else type(value)(items)
    if isinstance(value, dict):
        return {k: mark_tensors(v, func, func_id, io_type, f'{name}.{k}', index) for k, v in value.items()}
    return value


def mark(func_name: Optional[str] = None, inputs: Optional[Sequence[str]] = None,
         outputs: Optional[Sequence[str]] = None) -> Callable[[Callable], Callable]:
    """Decorator marking a function's inputs and outputs for partitioning.

    Args:
        func_name: name used in markers (``'<func_name>[<id>]:input'``);
            defaults to the function's ``__name__``.
        inputs: names of the positional parameters to mark, in order
            (``self`` excluded). None: no input is marked.
        outputs: names of the outputs (one per element when the function
            returns a tuple). None: no output is marked.
    """

    def decorator(func: Callable) -> Callable:
        name = func_name or func.__name__
        params = [p for p in inspect.signature(func).parameters if p != 'self']
        has_self = 'self' in inspect.signature(func).parameters

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            from mmdeploy.core.rewriters.manager import current_context

            ctx = current_context()
            if ctx is None or not ctx.extra.get('apply_marks', True):
                return func(*args, **kwargs)
            _define_op()
            counts = ctx.extra.setdefault('mark_counts', {})
            func_id = counts.get(name, 0)
            counts[name] = func_id + 1
            bound = list(args)
            start = 1 if has_self and bound else 0
            # ``id`` numbers the marked tensors of one call in declared order, so a
            # partition marker selecting several of them keeps that order
            index = [0]
            for input_name in inputs or ():
                if input_name in kwargs:
                    kwargs[input_name] = mark_tensors(kwargs[input_name], name, func_id, 'input',
                                                      input_name, index)
                elif input_name in params and params.index(input_name) + start < len(bound):
                    position = params.index(input_name) + start
                    bound[position] = mark_tensors(bound[position], name, func_id, 'input',
                                                   input_name, index)
            result = func(*bound, **kwargs)
            if not outputs:
                return result
            index = [0]
            if isinstance(result, (list, tuple)) and len(outputs) == len(result) and len(outputs) > 1:
                marked = [mark_tensors(r, name, func_id, 'output', out, index)
                          for r, out in zip(result, outputs)]
                return type(result)(marked)
            return mark_tensors(result, name, func_id, 'output', outputs[0], index)

        return wrapper

    return decorator
