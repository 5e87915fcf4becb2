"""MMCodebase and CODEBASE: the original MMDeploy's codebase registry, for ported codebases.

Here codebases are plugins (hook ``mmdeploy_codebases``). A codebase ported
from the original keeps its ``@CODEBASE.register_module(...)`` class and
registers it from its plugin with ``register(name, MyCodebase.tasks())``.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

class CodebaseRegistry:
    """A name -> class table with mmengine's ``register_module`` / ``get`` spelling."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.module_dict: Dict[str, type] = {}

    def register_module(self, name: Optional[Any] = None, module: Optional[type] = None,
                        force: bool = False) -> Any:
        """Register a class under ``name`` (default: its ``__name__``); a decorator without ``module``.

        Raises:
            KeyError: the name is taken and ``force`` is False.
        """

        def add(cls: type) -> type:
            key = str(getattr(name, 'value', name) if name is not None else cls.__name__)
            if key in self.module_dict and not force:
                raise KeyError(f'{key!r} is already registered in {self.name} '
                               f'by {self.module_dict[key].__qualname__}')
            self.module_dict[key] = cls
            return cls

        return add(module) if module is not None else add

    def get(self, name: Any) -> Optional[type]:
        """The class registered under ``name`` (a string or an enum member), or None."""
        return self.module_dict.get(str(getattr(name, 'value', name)))

CODEBASE = CodebaseRegistry('Codebases')

class MMCodebase:
    """Base of a ported codebase: a registry of its task processors.

    Attributes:
        task_registry: an mmengine Registry (or a dict) of task name ->
            task processor class.
    """

    task_registry: Any = None

    @classmethod
    def tasks(cls) -> Dict[str, type]:
        """Task name -> class, as the ``mmdeploy_codebases`` hook's ``register`` takes it."""
        registry = cls.task_registry
        table = getattr(registry, 'module_dict', registry)
        return dict(table or {})

    @classmethod
    def get_task_class(cls, task: Any) -> type:
        """The task processor class of ``task`` (a name or a Task member).

        Raises:
            CodebaseUnavailableError: the codebase has no such task.
        """
        from mmdeploy.errors import CodebaseUnavailableError

        key = str(getattr(task, 'value', task))
        tasks = cls.tasks()
        if key not in tasks:
            raise CodebaseUnavailableError(f'codebase {cls.__name__} has no task {key!r}; '
                                           f'its tasks: {", ".join(sorted(tasks)) or "none"}')
        return tasks[key]

    @classmethod
    def build_task_processor(cls, model_cfg: Any, deploy_cfg: Any, device: str) -> Any:
        """The task processor of ``codebase_config.task``, built for ``model_cfg``."""
        from mmdeploy.utils.config_utils import get_codebase_config

        return cls.get_task_class(get_codebase_config(deploy_cfg).get('task'))(model_cfg, deploy_cfg, device)

    @classmethod
    def register_deploy_modules(cls) -> None:
        """Import the rewrite modules (here, plugins do that in ``mmdeploy_rewrites``)."""

    @classmethod
    def register_all_modules(cls) -> None:
        """Register the codebase's own modules (nothing to do by default)."""
