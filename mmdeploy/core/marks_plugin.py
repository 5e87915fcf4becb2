"""Built-in plugin: how the ``mmdeploy::mark`` op is exported by both exporters."""
from __future__ import annotations

from typing import Any, Callable

from mmdeploy.core.marks import MARK_DOMAIN, MARK_OP, MARK_TYPE, _define_op
from mmdeploy.hookspecs import hookimpl


def _mark_symbolic(g: Any, x: Any, func: str, func_id: int, type: str, name: str, id: int) -> Any:
    out = g.op(f'{MARK_DOMAIN}::{MARK_TYPE}', x, func_s=func, func_id_i=func_id, type_s=type,
               name_s=name, id_i=id)
    out.setType(x.type())  # identity: same type and shape as its input
    return out


def _mark_translation() -> Callable:
    from mmdeploy.core.rewriters.symbolic_rewriter import onnx_custom_op

    op = onnx_custom_op(MARK_DOMAIN, MARK_TYPE, attributes={
        'func': 'string', 'func_id': 'int', 'type': 'string', 'name': 'string', 'id': 'int'})

    def mark_translation(x: Any, func: str, func_id: int, type: str, name: str, id: int) -> Any:
        return op(x, func=func, func_id=func_id, type=type, name=name, id=id)

    return mark_translation


@hookimpl
def mmdeploy_custom_ops(register: Callable[..., None]) -> None:
    """Register the export of ``mmdeploy::mark`` for every backend."""
    _define_op()
    register(MARK_OP, torchscript=_mark_symbolic, dynamo=_mark_translation(),
             arg_descriptors=('v', 's', 'i', 's', 's', 'i'))
