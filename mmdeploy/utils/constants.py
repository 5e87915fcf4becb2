"""Names of backends, codebases, tasks and IRs, as the original MMDeploy spells them.

``Backend``, ``Codebase``, ``Task`` and ``IR`` behave like the original's
string enums (``Backend.ONNXRUNTIME == 'onnxruntime'``,
``Backend.ONNXRUNTIME.value``, ``Backend.get('onnxruntime')``), but they are
*open*: a backend, codebase or task that a plugin registers is a member too
(``Backend.get('mybackend')``, ``Backend.MYBACKEND``), so a third-party engine
is accepted wherever a built-in one is. An unknown name raises
:class:`UnknownNameError` listing the known ones.

Importing this module is cheap: the plugin registry is only consulted when a
name that is not declared below is looked up.
"""
from __future__ import annotations

import re
from typing import Any, Dict, Iterable, Iterator, List

from mmdeploy.errors import ConfigError

#: the most boxes TensorRT's TopK accepts (k of ``torch.topk`` is clamped to it)
TENSORRT_MAX_TOPK = 3840


class UnknownNameError(ConfigError, KeyError):
    """A backend / codebase / task / IR name that is neither built in nor registered by a plugin.

    It is a ``KeyError`` too, like the original's ``Backend.get`` failure, so
    ported code catching ``KeyError`` keeps working.
    """

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ''


def _member_name(value: str) -> str:
    """``'mybackend'`` -> ``'MYBACKEND'``; ``'ObjectDetection'`` -> ``'OBJECT_DETECTION'``."""
    snake = re.sub(r'(?<=[a-z0-9])(?=[A-Z])', '_', value)
    return re.sub(r'\W', '_', snake).upper()


class _OpenEnumMeta(type):
    """Metaclass: upper-case string attributes of the class body become members."""

    def __new__(mcs, name: str, bases: tuple, namespace: Dict[str, Any]) -> type:
        declared = {k: v for k, v in namespace.items()
                    if k.isupper() and not k.startswith('_') and isinstance(v, str)}
        for key in declared:
            del namespace[key]
        cls = super().__new__(mcs, name, bases, namespace)
        cls._by_value = {}
        cls._declared = []
        for member_name, value in declared.items():
            cls._declared.append(cls._make(member_name, value))
        return cls

    def __call__(cls, value: Any) -> Any:  # Backend('onnxruntime'), as with an Enum
        return cls.get(value)

    def __getattr__(cls, name: str) -> Any:
        # only reached when normal lookup failed: maybe a plugin-registered member
        if name.startswith('_') or not name.isupper():
            raise AttributeError(name)
        for value in cls._dynamic_values():
            if _member_name(value) == name:
                return cls.get(value)
        raise AttributeError(f'{cls.__name__} has no member {name!r}; known: '
                             f'{", ".join(m.name for m in cls)}')

    def __getitem__(cls, name: str) -> Any:
        try:
            return getattr(cls, name)
        except AttributeError:
            raise UnknownNameError(f'{cls.__name__} has no member named {name!r}') from None

    def __iter__(cls) -> Iterator[Any]:
        seen = list(cls._declared)
        for value in cls._dynamic_values():
            if value not in cls._by_value:
                cls._make(_member_name(value), value)
            member = cls._by_value[value]
            if member not in seen:
                seen.append(member)
        return iter(seen)

    def __contains__(cls, value: Any) -> bool:
        try:
            cls.get(value)
        except UnknownNameError:
            return False
        return True

    def __len__(cls) -> int:
        return len(list(iter(cls)))


class OpenEnum(str, metaclass=_OpenEnumMeta):
    """A string enum whose members can be added by plugins (see the module docstring)."""

    _by_value: Dict[str, 'OpenEnum']
    _declared: List['OpenEnum']
    #: what the error says is being looked up
    _kind = 'name'

    @classmethod
    def _make(cls, member_name: str, value: str) -> 'OpenEnum':
        member = str.__new__(cls, value)
        member._name_ = member_name
        member._value_ = str(value)
        cls._by_value[str(value)] = member
        if member_name.isidentifier() and member_name not in cls.__dict__:
            type.__setattr__(cls, member_name, member)
        return member

    @classmethod
    def _dynamic_values(cls) -> Iterable[str]:
        """Values registered through plugins (none for a closed set)."""
        return ()

    @classmethod
    def get(cls, value: Any) -> 'OpenEnum':
        """The member whose value is ``value`` (a member is returned as is).

        Raises:
            UnknownNameError: neither declared nor registered by a plugin;
                the message lists the known values.
        """
        if isinstance(value, cls):
            return value
        key = value.value if isinstance(value, OpenEnum) else value
        if isinstance(key, str):
            member = cls._by_value.get(key)
            if member is not None:
                return member
            if key in set(cls._dynamic_values()):
                return cls._make(_member_name(key), key)
        known = ', '.join(sorted(m.value for m in cls))
        raise UnknownNameError(f'unknown {cls._kind} {value!r}; known: {known} (a plugin can register '
                               f'more, see README "Writing a plugin")')

    @property
    def name(self) -> str:
        """Member name, e.g. ``'ONNXRUNTIME'``."""
        return self._name_

    @property
    def value(self) -> str:
        """The plain string, e.g. ``'onnxruntime'``."""
        return self._value_

    def __str__(self) -> str:
        return self._value_

    def __repr__(self) -> str:
        return f'<{type(self).__name__}.{self._name_}: {self._value_!r}>'

    def __reduce__(self) -> Any:
        return type(self).get, (self._value_,)


def _registry() -> Any:
    from mmdeploy.plugins import get_registry

    return get_registry()


class Backend(OpenEnum):
    """Inference engines: the original's names, plus every backend a plugin registers."""

    _kind = 'backend'

    PYTORCH = 'pytorch'
    TENSORRT = 'tensorrt'
    ONNXRUNTIME = 'onnxruntime'
    PPLNN = 'pplnn'
    NCNN = 'ncnn'
    SNPE = 'snpe'
    OPENVINO = 'openvino'
    SDK = 'sdk'
    TORCHSCRIPT = 'torchscript'
    RKNN = 'rknn'
    ASCEND = 'ascend'
    COREML = 'coreml'
    TVM = 'tvm'
    VACC = 'vacc'
    DEFAULT = 'default'

    @classmethod
    def _dynamic_values(cls) -> Iterable[str]:
        return list(_registry().backends)


class Codebase(OpenEnum):
    """OpenMMLab codebases: the original's names, plus every codebase a plugin registers."""

    _kind = 'codebase'

    MMDET = 'mmdet'
    MMSEG = 'mmseg'
    MMPRETRAIN = 'mmpretrain'
    MMOCR = 'mmocr'
    MMAGIC = 'mmagic'
    MMPOSE = 'mmpose'
    MMDET3D = 'mmdet3d'
    MMROTATE = 'mmrotate'
    MMACTION = 'mmaction'
    MMRAZOR = 'mmrazor'
    MMYOLO = 'mmyolo'

    @classmethod
    def _dynamic_values(cls) -> Iterable[str]:
        return list(_registry().codebases)


class Task(OpenEnum):
    """Task names (``codebase_config.task``), plus every task a codebase plugin registers."""

    _kind = 'task'

    TEXT_DETECTION = 'TextDetection'
    TEXT_RECOGNITION = 'TextRecognition'
    SEGMENTATION = 'Segmentation'
    SUPER_RESOLUTION = 'SuperResolution'
    CLASSIFICATION = 'Classification'
    OBJECT_DETECTION = 'ObjectDetection'
    INSTANCE_SEGMENTATION = 'InstanceSegmentation'
    VOXEL_DETECTION = 'VoxelDetection'
    POSE_DETECTION = 'PoseDetection'
    ROTATED_DETECTION = 'RotatedDetection'
    VIDEO_RECOGNITION = 'VideoRecognition'
    MONO_DETECTION = 'MonoDetection'
    MODEL_COMPRESS = 'ModelCompress'

    @classmethod
    def _dynamic_values(cls) -> Iterable[str]:
        tasks: List[str] = []
        for entry in _registry().codebases.values():
            tasks.extend(t for t in (entry.value or {}) if t not in tasks)
        return tasks


class IR(OpenEnum):
    """Intermediate representations a rewrite may be restricted to (a closed set)."""

    _kind = 'IR'

    DEFAULT = 'default'
    ONNX = 'onnx'
    TORCHSCRIPT = 'torchscript'


__all__ = ['Backend', 'Codebase', 'Task', 'IR', 'TENSORRT_MAX_TOPK', 'UnknownNameError', 'OpenEnum']
