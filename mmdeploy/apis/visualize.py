"""visualize_model: the original MMDeploy's API for drawing one model's prediction."""
from __future__ import annotations

import os
from typing import Any, Optional, Sequence, Union


def visualize_model(model_cfg: Any, deploy_cfg: Any, model: Union[Any, str, Sequence[str]], img: Any,
                    device: str = 'cpu', backend: Optional[Any] = None, output_file: Optional[str] = None,
                    show_result: bool = False, **kwargs: Any) -> Any:
    """Predict ``img`` with a PyTorch model or backend files and draw the result.

    Args:
        model_cfg: the codebase's model config (path, Config or dict).
        deploy_cfg: the deploy config.
        model: an nn.Module built from ``model_cfg`` (runs in PyTorch), or the
            backend file(s) (run with the deploy config's backend).
        img: an image path or a BGR uint8 array.
        device: ``'cpu'`` or ``'cuda[:id]'``.
        backend: name shown in the picture's title (default: ``'pytorch'``
            for a module, the deploy config's backend for files).
        output_file: where to write the picture (PNG); None writes nothing
            unless ``show_result``.
        show_result: also show it in a window (needs a display).
        **kwargs: ``classes`` (label names) for the drawing.

    Returns:
        The prediction (the codebase's data sample).
    """
    from mmdeploy.apis.pytorch2onnx import build_task_processor
    from mmdeploy.codebase.base.task import read_image
    from mmdeploy.utils.config import get_backend, load_config

    deploy_cfg = load_config(deploy_cfg, what='deploy config')
    model_cfg = load_config(model_cfg, what='model config')
    image = read_image(img)
    task = build_task_processor(model_cfg, deploy_cfg, device)
    data, _ = task.create_input(image, task.ir_input_shape())
    classes = kwargs.get('classes')
    if isinstance(model, (str, os.PathLike, list, tuple)):
        files = [os.fspath(model)] if isinstance(model, (str, os.PathLike)) else [os.fspath(f) for f in model]
        result = task.build_backend_model(files).test_step(data)[0]
        title = str(backend or get_backend(deploy_cfg))
    else:
        result = task.run_pytorch(model, data)[0]
        title = str(backend or 'pytorch')
        if classes is None:
            classes = (getattr(model, 'dataset_meta', None) or {}).get('classes')
    if output_file is None and not show_result:
        return result
    target = output_file
    if target is None:
        import tempfile

        target = os.path.join(tempfile.mkdtemp(prefix='mmdeploy_vis_'), f'output_{title}.png')
    task.visualize(image, result, target, title, classes=classes)
    if show_result:
        import cv2

        cv2.imshow(title, cv2.imread(target))
        cv2.waitKey(0)
        cv2.destroyWindow(title)
    return result
