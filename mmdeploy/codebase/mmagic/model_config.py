"""The test-time part of an mmagic model config: no losses, discriminators or pretrained downloads.

mmagic builds every loss and discriminator a config names when it builds the
model, although only the generator runs at test time. ESRGAN's and
Real-ESRGAN's ``PerceptualLoss`` downloads VGG-19 weights from torchvision
while being built, and ESRGAN's generator has a ``Pretrained`` ``init_cfg``
pointing at a URL: deploying would need the network for parts it never runs.
"""
from __future__ import annotations

import copy
import inspect
from typing import Any, Dict, Optional

#: what a required loss argument is replaced with: builds offline, holds no weights
STAND_IN_LOSS = {'type': 'L1Loss'}


def is_training_only(key: str) -> bool:
    """Whether a model config key names a part only training uses (a loss or a discriminator)."""
    name = key.lower()
    return name == 'loss' or name.endswith('_loss') or 'discriminator' in name


def _init_parameters(model_type: Any) -> Optional[Dict[str, inspect.Parameter]]:
    """The ``__init__`` parameters of the mmagic model class ``model_type`` (None: class unknown)."""
    from mmagic.registry import MODELS  # mmengine's root registry finds mmagic's only once it is imported

    cls = model_type if inspect.isclass(model_type) else MODELS.get(model_type)
    if cls is None:
        return None
    try:
        return dict(inspect.signature(cls.__init__).parameters)
    except (TypeError, ValueError):
        return None


def without_pretrained_init(cfg: Any) -> Any:
    """``cfg`` with every ``init_cfg`` of type ``Pretrained`` set to None, at any depth (in place).

    A list ``init_cfg`` loses its ``Pretrained`` entries only.
    """
    if isinstance(cfg, dict):
        for key, value in list(cfg.items()):
            if key == 'init_cfg':
                if isinstance(value, dict) and value.get('type') == 'Pretrained':
                    cfg[key] = None
                elif isinstance(value, (list, tuple)):
                    kept = [v for v in value if not (isinstance(v, dict) and v.get('type') == 'Pretrained')]
                    cfg[key] = kept or None
            else:
                without_pretrained_init(value)
    elif isinstance(cfg, (list, tuple)):
        for value in cfg:
            without_pretrained_init(value)
    return cfg


def test_time_model(model: Dict[str, Any]) -> Dict[str, Any]:
    """A copy of a model config (the ``model`` section) with what only training builds taken out.

    Every loss (keys named ``loss`` or ``*_loss``) becomes :data:`STAND_IN_LOSS`:
    mmagic's classes build some losses unconditionally (``BaseEditModel``'s
    ``pixel_loss``, even when SRGAN passes None), so a loss cannot just be
    dropped. Discriminators (keys containing ``discriminator``) are dropped
    where the model class gives them a default, kept where it requires
    one. ``Pretrained`` ``init_cfg`` entries are removed at every depth: a
    checkpoint, when given, is loaded after the build. Keys the model class
    does not take (or an unknown class) are left for the build to report.
    """
    model = copy.deepcopy(model)
    params = _init_parameters(model.get('type'))
    if params is not None:
        takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        for key in [k for k in model if is_training_only(k)]:
            param = params.get(key)
            if param is None and not takes_kwargs:
                continue  # the class does not take it: the build says so
            if 'discriminator' not in key.lower():
                model[key] = dict(STAND_IN_LOSS)
            elif param is None or param.default is not inspect.Parameter.empty:
                del model[key]
    return without_pretrained_init(model)


def test_time_config(model_cfg: Any) -> Any:
    """A copy of the whole model config whose ``model`` is :func:`test_time_model`'s.

    The model class is looked up in mmagic's registry to know which
    arguments it requires.
    """
    cfg = copy.deepcopy(model_cfg)
    if cfg.get('model') is not None:
        cfg['model'] = test_time_model(cfg['model'])
    return cfg
