"""Symbolic rewrites: how a torch op or autograd Function becomes ONNX nodes.

Two exporters, two mechanisms:

- TorchScript exporter (``exporter='torchscript'``): a symbolic function
  ``(g, *args)`` registered for a torch operator name
  (``torch.onnx.register_custom_op_symbolic``) or set as the ``symbolic``
  staticmethod of an ``autograd.Function``.
- Dynamo exporter (``exporter='dynamo'``): an onnxscript function put in
  ``custom_translation_table``, keyed by the torch operator overload. The
  dynamo exporter ignores autograd-Function symbolics, so ops that must become
  custom ONNX nodes are defined as :mod:`torch.library` custom ops.

Both are registered through :meth:`SymbolicRewriter.register_symbolic` and
installed only inside a :class:`~mmdeploy.core.RewriterContext`.
"""
from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from mmdeploy.core.rewriters.records import DEFAULT, IR, Checker, Record, RecordRegistry
from mmdeploy.core.rewriters.function_rewriter import (RewriteCallContext, find_context, pop_context,
                                                       push_context)
from mmdeploy.core.rewriters.targets import PatchSet, locate
from mmdeploy.errors import RewriteError


def _with_context(symbolic: Callable, ctx: RewriteCallContext) -> Callable:
    """``symbolic`` that sees ``ctx`` through ``SYMBOLIC_REWRITER.get_context()`` while it runs."""

    @functools.wraps(symbolic)
    def run(*args: Any, **kwargs: Any) -> Any:
        push_context(ctx)
        try:
            return symbolic(*args, **kwargs)
        finally:
            pop_context()

    return run


def _torch_op_overload(name: str) -> Any:
    """``'mmdeploy::mark'`` or ``'aten::cummax'`` -> the torch OpOverload."""
    import torch

    namespace, _, op = name.partition('::')
    packet = getattr(getattr(torch.ops, namespace or 'aten'), op)
    return packet.default


# TorchScript symbolics installed by the active contexts, innermost last, per
# (op, opset): leaving an inner context puts the enclosing one's symbolic back.
# Only touched while the export lock is held.
_TORCHSCRIPT_STACK: Dict[Tuple[str, int], List[Callable]] = {}


def _push_torchscript_symbolic(name: str, symbolic: Callable, opset: int) -> None:
    import torch

    torch.onnx.register_custom_op_symbolic(name, symbolic, opset)
    _TORCHSCRIPT_STACK.setdefault((name, opset), []).append(symbolic)


def _pop_torchscript_symbolic(name: str, opset: int) -> None:
    import torch

    stack = _TORCHSCRIPT_STACK.get((name, opset), [])
    if stack:
        stack.pop()
    if stack:
        torch.onnx.register_custom_op_symbolic(name, stack[-1], opset)
    else:
        _TORCHSCRIPT_STACK.pop((name, opset), None)
        torch.onnx.unregister_custom_op_symbolic(name, opset)


class SymbolicRewriter:
    """Registry of symbolic rewrites; see :meth:`register_symbolic`."""

    def __init__(self) -> None:
        self.registry = RecordRegistry()

    def register_symbolic(self, func_name: str, backend: str = DEFAULT, is_pytorch: bool = False,
                          arg_descriptors: Optional[Sequence[str]] = None, ir: str = IR.DEFAULT,
                          extra_checkers: Optional[Sequence[Checker]] = None,
                          translation: Optional[Callable] = None,
                          **kwargs: Any) -> Callable[[Callable], Callable]:
        """Decorator registering how ``func_name`` is exported.

        Args:
            func_name: with ``is_pytorch=True``, a torch operator name
                (``'cummax'`` for aten, ``'mmdeploy::mark'`` for a custom op);
                otherwise the dotted path of an ``autograd.Function``.
            backend: only for this backend (``'default'``: any).
            is_pytorch: see ``func_name``.
            arg_descriptors: ``torch.onnx.symbolic_helper.parse_args``
                descriptors applied to the symbolic (e.g. ``('v', 'i')``).
            ir: only for this IR.
            extra_checkers: checkers that must all pass: callables ``env -> bool``
                or objects with ``.check(env)`` (``LibVersionChecker``, ...).
            translation: onnxscript function for the dynamo exporter (only for
                torch operators, ``is_pytorch=True``).

        The decorated function is the TorchScript symbolic; it may be ``None``
        through :meth:`register_custom_op` when only a translation exists.
        """

        def decorator(symbolic: Optional[Callable]) -> Optional[Callable]:
            fn = symbolic
            if fn is not None and arg_descriptors:
                from torch.onnx import symbolic_helper

                fn = symbolic_helper.parse_args(*arg_descriptors)(fn)
            extra = dict(kwargs, is_pytorch=is_pytorch, translation=translation, original=symbolic)
            self.registry.add(Record(func_name, fn, backend, ir, tuple(extra_checkers or ()), extra))
            return symbolic

        return decorator

    def register_custom_op(self, op: str, torchscript: Optional[Callable] = None,
                           dynamo: Optional[Callable] = None,
                           backends: Optional[Sequence[str]] = None,
                           arg_descriptors: Optional[Sequence[str]] = None) -> None:
        """Register a torch custom op's export (the ``mmdeploy_custom_ops`` hook's callback).

        Args:
            op: torch operator name, e.g. ``'mmdeploy::mark'``.
            torchscript: symbolic for the TorchScript exporter.
            dynamo: onnxscript translation for the dynamo exporter.
            backends: restrict to these backends (None: every backend).
            arg_descriptors: ``parse_args`` descriptors for ``torchscript``.
        """
        for backend in backends or (DEFAULT,):
            self.register_symbolic(op, backend=backend, is_pytorch=True,
                                   arg_descriptors=arg_descriptors, translation=dynamo)(torchscript)

    def remove_record(self, symbolic: Callable) -> None:
        """Unregister a symbolic (used by tests)."""
        self.registry.remove(symbolic)
        for name in self.registry.names():
            for record in self.registry.records(name):
                if record.extra.get('original') is symbolic:
                    self.registry.remove(record.obj)

    @staticmethod
    def get_context(key: Optional[str] = None) -> RewriteCallContext:
        """The context of the TorchScript symbolic running on this thread.

        It has ``cfg``, ``backend``, ``ir``, ``opset`` and ``origin_func``:
        the symbolic that was in place before (the autograd Function's own
        ``symbolic``, or an enclosing context's for a torch operator; None
        when there was none known to mmdeploy).

        Args:
            key: the name the symbolic was registered under; None: the
                innermost running one.

        Raises:
            RewriteError: when no symbolic (of ``key``) is running.
        """
        return find_context(key, 'SYMBOLIC_REWRITER')

    def enter(self, patches: PatchSet, env: Mapping[str, Any], opset: int, cfg: Any = None,
              strict: bool = False, extra: Optional[Mapping[str, Any]] = None) -> Dict[Any, Callable]:
        """Install TorchScript symbolics; return the dynamo translation table.

        ``cfg`` and ``extra`` are what symbolics see on their context; a stale
        autograd-Function target warns and is skipped, or raises when ``strict``.
        """
        import torch

        translations: Dict[Any, Callable] = {}
        extra = dict(extra or {})

        def context(record: Record, origin: Optional[Callable]) -> RewriteCallContext:
            return RewriteCallContext(origin, cfg if cfg is not None else {}, env.get('backend'),
                                      env.get('ir'), opset, {**extra, **record.extra}, record.name)

        for record in self.registry.select(env):
            if record.extra.get('is_pytorch'):
                name = record.name if '::' in record.name else f'::{record.name}'
                if record.extra.get('translation') is not None:
                    try:
                        translations[_torch_op_overload(name)] = record.extra['translation']
                    except (AttributeError, RuntimeError) as exc:
                        raise RewriteError(f'symbolic {record.name!r}: no such torch operator '
                                           f'({exc})') from exc
                if record.obj is not None and env.get('exporter') != 'dynamo':
                    previous = _TORCHSCRIPT_STACK.get((name, opset), [None])[-1]
                    _push_torchscript_symbolic(name, _with_context(record.obj, context(record, previous)),
                                               opset)
                    patches.on_undo(lambda name=name: _pop_torchscript_symbolic(name, opset))
                continue
            target = locate(record.name, strict)
            if target is None:
                continue
            function_cls = target.function
            if not (inspect.isclass(function_cls) and issubclass(function_cls, torch.autograd.Function)):
                raise RewriteError(f'symbolic target {record.name!r} is not a torch.autograd.Function; '
                                   f"use is_pytorch=True for torch operators")
            origin = function_cls.__dict__.get('symbolic')
            origin = origin.__func__ if isinstance(origin, staticmethod) else origin
            patches.set(function_cls, 'symbolic', staticmethod(_with_context(record.obj, context(record, origin))))
        return translations


def onnx_custom_op(domain: str, name: str, num_inputs: int = 1, num_outputs: int = 1,
                   attributes: Mapping[str, str] = (), version: int = 1) -> Callable:
    """An onnxscript callable emitting node ``domain::name`` (for dynamo translations).

    Args:
        domain: ONNX domain, e.g. ``'mmdeploy'``.
        name: op type, e.g. ``'Mark'``.
        num_inputs: number of (variadic-typed) tensor inputs.
        num_outputs: number of tensor outputs.
        attributes: attribute name -> ``'int' | 'float' | 'string' | 'ints' | 'floats'``.
        version: domain version.
    """
    import onnxscript
    from onnx.defs import OpSchema

    kinds = {'int': OpSchema.AttrType.INT, 'float': OpSchema.AttrType.FLOAT,
             'string': OpSchema.AttrType.STRING, 'ints': OpSchema.AttrType.INTS,
             'floats': OpSchema.AttrType.FLOATS}
    types = ['tensor(float)', 'tensor(float16)', 'tensor(double)', 'tensor(int64)',
             'tensor(int32)', 'tensor(bool)', 'tensor(uint8)', 'tensor(int8)']
    schema = OpSchema(
        name, domain, version,
        inputs=[OpSchema.FormalParameter(f'input{i}', f'T{i}') for i in range(num_inputs)],
        outputs=[OpSchema.FormalParameter(f'output{i}', f'U{i}') for i in range(num_outputs)],
        type_constraints=[(f'T{i}', types, '') for i in range(num_inputs)]
        + [(f'U{i}', types, '') for i in range(num_outputs)],
        attributes=[OpSchema.Attribute(attr, kinds[kind], '', required=False)
                    for attr, kind in dict(attributes).items()])
    return onnxscript.values.Op(onnxscript.values.Opset(domain, version), name, schema)
