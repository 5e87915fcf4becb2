"""Refuse, before export, a model the registered rewrites would export wrongly.

A function rewrite registered for ``Class.method`` is installed on ``Class``;
Python then runs it for every subclass too. That is right only when the
subclass computes what the rewrite assumes: a head that overrides its box
decoding but inherits a rewritten ``predict_by_feat`` exports boxes the
PyTorch model never produces. So a rewrite declares, with keywords of
``FUNCTION_REWRITER.register_rewriter`` (stored on the record as
``record.extra``):

- ``relies_on``: methods whose behaviour the rewrite replaces or assumes.
  A short name (``'_predict_by_feat_single'``) is a method of the rewritten
  class; a dotted name (``'pkg.mod.Head.predict'``) a method of another
  class, checked on every module of the model that is an instance of it.
- ``verified``: dotted class names of subclasses numerically verified
  against PyTorch despite their overrides. A subclass of one of them that
  overrides nothing more is accepted too.
- ``refused``: ``{dotted class name: reason}``: subclasses refused although
  they override nothing the rewrite relies on (e.g. never verified).

:func:`check_model` applies the rule to every module of a model (the module
whose class, or a class above it, defines the rewritten method with a
rewrite of its own is governed by that rewrite), and :func:`class_refusal`
to one class. A subclass overriding the rewritten method, or a relied-on
one, without a rewrite of its own is refused, naming class and method.
"""
from __future__ import annotations

import importlib
import inspect
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from mmdeploy.errors import UnsupportedModelError

#: what a refusal tells the user to do
ADVICE = ('use a model mmdeploy supports (README, "Exporters"), or register a rewrite for it in a plugin '
          '(README, "Writing a plugin")')


@dataclass(frozen=True)
class Rule:
    """One selected function rewrite of a class method, with its support declarations."""

    name: str
    cls: type
    method: str
    relies_on: Tuple[str, ...] = ()
    foreign: Tuple[Tuple[type, str], ...] = ()
    verified: Tuple[type, ...] = ()
    refused: Tuple[Tuple[type, str], ...] = ()

    @property
    def label(self) -> str:
        """``Class.method`` as the user knows it."""
        return f'{self.cls.__name__}.{self.method}'


@dataclass
class Refusal:
    """Why one module of a model cannot be exported; ``message`` is one line."""

    path: str
    cls: type
    message: str
    priority: int = 0  # lower is reported first


@dataclass
class RuleSet:
    """The rules of one environment, indexed by (class, method)."""

    rules: List[Rule] = field(default_factory=list)
    by_key: Dict[Tuple[type, str], Rule] = field(init=False)

    def __post_init__(self) -> None:
        self.by_key = {(r.cls, r.method): r for r in self.rules}


def _import_attr(path: str) -> Any:
    """The object a dotted path names (longest importable module prefix, then attributes); None if absent."""
    parts = path.split('.')
    for index in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module('.'.join(parts[:index]))
        except ImportError:
            continue
        for part in parts[index:]:
            obj = getattr(obj, part, None)
            if obj is None:
                return None
        return obj
    return None


def _class_method(path: str) -> Optional[Tuple[type, str]]:
    """``'pkg.mod.Class.method'`` -> ``(Class, 'method')``; None for functions or missing targets."""
    if path.split('.', 1)[0] not in sys.modules:
        return None  # nothing of that package is loaded: no model of it can exist
    owner_path, _, method = path.rpartition('.')
    owner = _import_attr(owner_path) if owner_path else None
    if not inspect.isclass(owner):
        return None
    return owner, method


def _classes(paths: Iterable[str]) -> Tuple[type, ...]:
    found = (_import_attr(p) for p in paths)
    return tuple(c for c in found if inspect.isclass(c))


def rules_for(env: Mapping[str, Any], rewriter: Any = None) -> RuleSet:
    """The class-method rewrites selected for ``env`` (backend, ir, ...), with their declarations.

    Plugins' rewrites are loaded first, as an export would.
    """
    if rewriter is None:
        from mmdeploy.core import FUNCTION_REWRITER
        from mmdeploy.plugins import get_plugin_manager

        get_plugin_manager().load_rewrites()
        rewriter = FUNCTION_REWRITER
    rules = []
    for record in rewriter.registry.select(env):
        target = _class_method(record.name)
        if target is None:
            continue
        extra = getattr(record, 'extra', None) or {}
        relies = tuple(extra.get('relies_on') or ())
        foreign = tuple(t for t in (_class_method(n) for n in relies if '.' in n) if t is not None)
        refused = extra.get('refused') or {}
        refused_classes = tuple((c, refused[p]) for p in refused for c in _classes([p]))
        rules.append(Rule(record.name, target[0], target[1], tuple(n for n in relies if '.' not in n),
                          foreign, _classes(extra.get('verified') or ()), refused_classes))
    return RuleSet(rules)


def _definer(cls: type, name: str) -> Optional[type]:
    """The class of ``cls``'s MRO whose body defines ``name`` (None: nowhere)."""
    for klass in cls.__mro__:
        if name in vars(klass):
            return klass
    return None


def governing_rule(cls: type, method: str, rules: RuleSet) -> Tuple[Optional[Rule], Optional[type]]:
    """Which rewrite of ``method`` applies to instances of ``cls``.

    Walks ``cls``'s MRO to the first class that has a rewrite of ``method``
    or defines it. Returns ``(rule, None)`` when that class has a rewrite,
    ``(None, overriding_class)`` when a subclass of a rewritten class defines
    ``method`` without a rewrite of its own, and ``(None, None)`` when no
    rewrite of ``method`` concerns ``cls``.
    """
    by_key = rules.by_key
    rewritten = [r.cls for r in rules.rules if r.method == method and issubclass(cls, r.cls)]
    if not rewritten:
        return None, None
    for klass in cls.__mro__:
        rule = by_key.get((klass, method))
        if rule is not None:
            return rule, None
        if method in vars(klass):
            return None, klass
    return None, None


def _verified(cls: type, rule: Rule, names: Sequence[str]) -> bool:
    """``cls`` is a verified class of ``rule``, or inherits one without overriding ``names`` further."""
    for klass in rule.verified:
        if issubclass(cls, klass) and all(_definer(cls, n) is _definer(klass, n) for n in names):
            return True
    return False


def _covered(klass: Optional[type], name: str, rules: RuleSet) -> bool:
    """``klass.name`` has a rewrite of its own (it is then checked by that rewrite's declarations)."""
    return klass is not None and (klass, name) in rules.by_key


def class_refusal(cls: type, rules: RuleSet) -> Optional[str]:
    """Why instances of ``cls`` cannot be exported with ``rules`` (one line), or None when they can.

    Only the class itself is judged: methods of other classes a rewrite
    relies on (dotted ``relies_on``) need the model, see :func:`check_model`.
    """
    problems = _class_problems(cls, rules)
    return min(problems)[1] if problems else None


def _class_problems(cls: type, rules: RuleSet) -> List[Tuple[int, str]]:
    problems: List[Tuple[int, str]] = []
    name = cls.__name__
    for method in sorted({r.method for r in rules.rules if issubclass(cls, r.cls)}):
        rule, overrider = governing_rule(cls, method, rules)
        if rule is None:
            if overrider is None:
                continue
            base = next(r for r in rules.rules if r.method == method and issubclass(overrider, r.cls))
            if any(_verified(cls, r, (method,)) for r in rules.rules if r.method == method):
                continue
            problems.append((0, f'{name} cannot be exported: {overrider.__name__}.{method} overrides '
                                f'{base.label}, which mmdeploy rewrites for export, and has no rewrite of its '
                                f'own (the graph would not compute what PyTorch does); {ADVICE}'))
            continue
        for klass, reason in rule.refused:
            if issubclass(cls, klass):
                problems.append((1, f'{name} cannot be exported: the rewrite of {rule.label} does not '
                                    f'support {klass.__name__} ({reason}); {ADVICE}'))
                break
        names = (rule.method, *rule.relies_on)
        if _verified(cls, rule, names):
            continue
        overridden = []
        for relied in rule.relies_on:
            mine, base = _definer(cls, relied), _definer(rule.cls, relied)
            if mine is not base and not _covered(mine, relied, rules):
                overridden.append(f'{mine.__name__}.{relied}')
        if overridden:
            verb = 'overrides a method' if len(overridden) == 1 else 'override methods'
            problems.append((0, f'{name} cannot be exported: {", ".join(overridden)} {verb} the rewrite of '
                                f'{rule.label} relies on, and {name} was not verified with it (its outputs may '
                                f'differ from PyTorch); {ADVICE}'))
    return problems


def model_refusals(model: Any, rules: RuleSet, entry_methods: Sequence[str] = ()) -> List[Refusal]:
    """Every reason why ``model`` cannot be exported with ``rules``, most informative first.

    Args:
        model: the torch module to export.
        rules: from :func:`rules_for`.
        entry_methods: methods of the model's own class (usually
            ``'forward'``) that must be rewritten: without, the graph would
            return the model's raw tensors under the task's output names.
    """
    refusals: List[Refusal] = []
    modules = list(model.named_modules()) if hasattr(model, 'named_modules') else [('', model)]
    seen: Dict[type, List[Tuple[int, str]]] = {}
    applied: Dict[str, Rule] = {}
    for path, module in modules:
        cls = type(module)
        if cls not in seen:
            seen[cls] = _class_problems(cls, rules)
        for priority, message in seen[cls]:
            refusals.append(Refusal(path, cls, _with_path(path, message), priority))
        for method in {r.method for r in rules.rules if issubclass(cls, r.cls)}:
            rule, _ = governing_rule(cls, method, rules)
            if rule is not None:
                applied[rule.name] = rule
    for rule in applied.values():
        for owner, relied in rule.foreign:
            base = _definer(owner, relied)
            for path, module in modules:
                cls = type(module)
                if not isinstance(module, owner) or _verified(cls, rule, (relied,)):
                    continue
                mine = _definer(cls, relied)
                if mine is base or _covered(mine, relied, rules):
                    continue
                refusals.append(Refusal(path, cls, _with_path(
                    path, f'{cls.__name__} cannot be exported: {mine.__name__}.{relied} overrides '
                          f'{owner.__name__}.{relied}, which the rewrite of {rule.label} relies on; {ADVICE}'), 0))
    root = type(model)
    for method in entry_methods:
        if governing_rule(root, method, rules)[0] is None and not any(r.priority == 0 and r.path == ''
                                                                        for r in refusals):
            known = sorted({r.cls.__name__ for r in rules.rules if r.method == method and _kin(r.cls, root)})
            hint = f' (rewritten: {", ".join(known)} and their subclasses)' if known else ''
            refusals.append(Refusal('', root, f'{root.__name__} cannot be exported: no mmdeploy rewrite turns '
                                              f'{root.__name__}.{method} into the graph of this task{hint}, so '
                                              f'the graph would hold its raw outputs; {ADVICE}', 2))
    refusals.sort(key=lambda r: r.priority)
    return refusals


def _kin(cls: type, other: type) -> bool:
    """The two classes share a base class of ``other``'s own package (e.g. mmdet's BaseDetector)."""
    package = other.__module__.split('.')[0]
    return any(k.__module__.split('.')[0] == package for k in set(cls.__mro__) & set(other.__mro__))


def _with_path(path: str, message: str) -> str:
    return f'{message} [module {path!r}]' if path else message


def check_model(model: Any, env: Mapping[str, Any], entry_methods: Sequence[str] = (),
                rewriter: Any = None) -> None:
    """Raise UnsupportedModelError when the rewrites of ``env`` cannot export ``model`` faithfully.

    Args:
        model: the torch module about to be exported.
        env: ``{'backend': ..., 'ir': 'onnx', 'exporter': ..., 'opset': ...}``
            (selects the rewrites as the export will).
        entry_methods: methods of the model's class that must be rewritten
            (see :func:`model_refusals`).
        rewriter: the function rewriter (default: mmdeploy's).

    Raises:
        UnsupportedModelError: one line naming the class, the method and
            what to do.
    """
    refusals = model_refusals(model, rules_for(env, rewriter), entry_methods)
    if refusals:
        raise UnsupportedModelError(refusals[0].message)
