"""inference_model: run backend files on an image through the codebase's pre/postprocess."""
from __future__ import annotations

from typing import Any, List, Sequence

from mmdeploy.utils.config import load_config


def inference_model(model_cfg: Any, deploy_cfg: Any, backend_files: Sequence[str], img: Any,
                    device: str = 'cpu') -> List[Any]:
    """Predict with a converted model; returns the codebase's data samples (one per image)."""
    from mmdeploy.apis.pytorch2onnx import build_task_processor

    deploy_cfg = load_config(deploy_cfg, what='deploy config')
    model_cfg = load_config(model_cfg, what='model config')
    task = build_task_processor(model_cfg, deploy_cfg, device)
    backend_model = task.build_backend_model(backend_files)
    data, _ = task.create_input(img, task.ir_input_shape())
    return backend_model.test_step(data)
