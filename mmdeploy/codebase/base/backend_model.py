"""BaseBackendModel: the original MMDeploy's base of models that run backend files.

This project's backend models only need ``test_step`` (see
:meth:`mmdeploy.codebase.base.BaseTask.build_backend_model`); this class is
for backend models ported from the original, which subclass it and call
:meth:`_build_wrapper`.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

from mmengine.model import BaseModel


class BaseBackendModel(BaseModel):
    """An mmengine model whose ``forward`` runs a backend wrapper.

    Args:
        deploy_cfg: the deploy config; its ``onnx_config.input_names`` /
            ``output_names`` are kept as ``input_names`` / ``output_names``.
        data_preprocessor: the model's data preprocessor (config or module).
        init_cfg: mmengine's init config.
    """

    def __init__(self, deploy_cfg: Any = None, data_preprocessor: Any = None, init_cfg: Any = None,
                 *args: Any, **kwargs: Any) -> None:
        from mmdeploy.utils.config import get_ir_config

        ir_cfg = get_ir_config(deploy_cfg) if deploy_cfg is not None else {}
        self.input_names = list(ir_cfg.get('input_names', None) or [])
        self.output_names = list(ir_cfg.get('output_names', None) or [])
        super().__init__(init_cfg=init_cfg, data_preprocessor=data_preprocessor)

    @staticmethod
    def _build_wrapper(backend: Any, backend_files: Sequence[str], device: str,
                       input_names: Optional[Sequence[str]] = None,
                       output_names: Optional[Sequence[str]] = None, deploy_cfg: Any = None,
                       **kwargs: Any) -> Any:
        """Load ``backend_files`` with the manager of ``backend`` (a name or a Backend member)."""
        from mmdeploy.plugins import get_backend_manager

        manager = get_backend_manager(str(getattr(backend, 'value', backend)))
        return manager.build_wrapper(list(backend_files), device, deploy_cfg=deploy_cfg,
                                     input_names=input_names, output_names=output_names)

    def destroy(self) -> None:
        """Release the wrapper's engine resources, if it has a ``close``."""
        wrapper = getattr(self, 'wrapper', None)
        if wrapper is not None and hasattr(wrapper, 'close'):
            wrapper.close()

    def forward(self, inputs: Any, data_samples: Any = None, mode: str = 'predict', **kwargs: Any) -> Any:
        """Run the backend; subclasses implement it."""
        raise NotImplementedError
