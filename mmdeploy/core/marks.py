"""Partition marks: tag tensors at function boundaries so a model can be cut later.

``@mark('extract_feat', inputs=['img'], outputs='feat')`` on a function makes
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
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

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


def _has_tensor(value: Any) -> bool:
    import torch

    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, (list, tuple)):
        return any(_has_tensor(v) for v in value)
    if isinstance(value, dict):
        return any(_has_tensor(v) for v in value.values())
    return False


def _label_list(labels: Union[None, str, Sequence[str]]) -> Optional[List[str]]:
    if labels is None:
        return None
    return [labels] if isinstance(labels, str) else [str(label) for label in labels]


class _Labeller:
    """Hands out labels in order to the values that carry tensors; generated ones when none were given."""

    def __init__(self, labels: Optional[List[str]], prefix: str) -> None:
        self.labels = labels
        self.prefix = prefix
        self.used = 0

    def next(self) -> Optional[str]:
        if self.labels is None:
            label = f'{self.prefix}_{self.used}'
        elif self.used < len(self.labels):
            label = self.labels[self.used]
        else:
            return None  # more tensor-carrying values than labels: the rest is not marked
        self.used += 1
        return label


def _mark_inputs(signature: inspect.Signature, args: tuple, kwargs: dict, labels: Optional[List[str]],
                 func: str, func_id: int) -> Tuple[tuple, dict]:
    """Mark the tensor-carrying arguments, in parameter order, with the next label each."""
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError:
        return args, kwargs  # let the function raise its own error
    labeller, index = _Labeller(labels, 'input'), [0]

    def mark_one(value: Any) -> Any:
        if not _has_tensor(value):
            return value
        label = labeller.next()
        return value if label is None else mark_tensors(value, func, func_id, 'input', label, index)

    for name, value in list(bound.arguments.items()):
        kind = signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_POSITIONAL:
            bound.arguments[name] = tuple(mark_one(v) for v in value)
        elif kind is inspect.Parameter.VAR_KEYWORD:
            bound.arguments[name] = {k: mark_one(v) for k, v in value.items()}
        else:
            bound.arguments[name] = mark_one(value)
    return bound.args, bound.kwargs


def _mark_outputs(result: Any, labels: Union[None, str, Sequence[str]], func: str, func_id: int) -> Any:
    """One label for the whole result (a string), else one per tensor-carrying element."""
    index = [0]
    if isinstance(labels, str):
        return mark_tensors(result, func, func_id, 'output', labels, index)
    labeller = _Labeller(_label_list(labels), 'output')
    if not isinstance(result, (list, tuple)):
        label = labeller.next() if _has_tensor(result) else None
        return result if label is None else mark_tensors(result, func, func_id, 'output', label, index)
    marked = []
    for item in result:
        label = labeller.next() if _has_tensor(item) else None
        marked.append(item if label is None else mark_tensors(item, func, func_id, 'output', label, index))
    return type(result)(*marked) if hasattr(result, '_fields') else type(result)(marked)


def mark(func_name: Optional[str] = None, inputs: Union[None, str, Sequence[str]] = None,
         outputs: Union[None, str, Sequence[str]] = None) -> Callable[[Callable], Callable]:
    """Decorator marking a function's inputs and outputs for partitioning (the original's semantics).

    Args:
        func_name: name used in markers (``'<func_name>[<id>]:input'``);
            defaults to the function's ``__name__``.
        inputs: labels given in order to the arguments that carry tensors
            (``self`` and other non-tensor arguments take none), whether
            passed by position or keyword; a string is one label. Arguments
            past the last label are not marked. None: every tensor argument
            is marked, labelled ``input_0``, ``input_1``, ...
        outputs: a string labels the whole result; a list gives one label per
            tensor-carrying element of a returned tuple / list (or its first
            label to a single returned value). None: every tensor output is
            marked, labelled ``output_0``, ``output_1``, ...

    A label names the tensor in the graph when a partition cuts there;
    tensors nested in a list / tuple / dict get suffixes (``feat.0``,
    ``feat.1``, ``meta.key``).
    """

    def decorator(func: Callable) -> Callable:
        name = func_name or func.__name__
        signature = inspect.signature(func)
        input_labels = _label_list(inputs)

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
            # ``id`` numbers the marked tensors of one call in order, so a
            # partition marker selecting several of them keeps that order
            args, kwargs = _mark_inputs(signature, args, kwargs, input_labels, name, func_id)
            return _mark_outputs(func(*args, **kwargs), outputs, name, func_id)

        return wrapper

    return decorator
