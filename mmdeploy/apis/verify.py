"""Verification of a converted model: the backend's outputs against PyTorch's, within tolerances.

:func:`~mmdeploy.apis.deploy.deploy` is a gate: it runs both sides on the test
image (and, for dynamic deploy configs, at a second shape), asks the task
processor to compare them (``BaseTask.compare_results``), and fails with
:class:`VerificationError` when an output differs beyond its tolerance.

What lives here is task-independent: element-wise array comparison
(:func:`compare_outputs`, :func:`check_arrays`), the detection matching rule
shared with the tests (:func:`match_detections`), the tolerances of the deploy
config's ``verify_config`` section (:func:`resolve_tolerances`) and the
checks of declared dynamic axes (:func:`declared_dynamic_axes`,
:func:`fixed_dynamic_axes`).
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from mmdeploy.errors import ConfigError, MMDeployError


class VerificationError(MMDeployError, RuntimeError):
    """The backend's outputs differ from PyTorch's beyond tolerance (the files are kept for inspection)."""


#: keys of ``verify_config`` that are not tolerances
VERIFY_SWITCHES = ('second_shape',)


@dataclass
class OutputCheck:
    """The comparison of one output (or one aspect of it, e.g. the detection count).

    Attributes:
        name: output name (``'scores'``, ``'dets'``, ``'labels'``, ``'masks'``).
        passed: within tolerance.
        detail: what was compared and found, for people (one line).
        max_abs / max_rel / mean_abs: element-wise differences, where they
            mean something (``None`` otherwise).
    """

    name: str
    passed: bool
    detail: str
    max_abs: Optional[float] = None
    max_rel: Optional[float] = None
    mean_abs: Optional[float] = None


@dataclass
class Verification:
    """Every check of one run (the test image, or the second shape).

    Attributes:
        label: which run (``'test image'``, ``'second shape (batch 2, 3x96x128)'``).
        checks: one per compared output.
        notes: things worth saying that are no failure (``0 detections on
            both sides: nothing compared``).
    """

    label: str
    checks: List[OutputCheck] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """No check failed."""
        return all(check.passed for check in self.checks)

    def failures(self) -> List[str]:
        """``'name: detail'`` of each failed check."""
        return [f'{check.name}: {check.detail}' for check in self.checks if not check.passed]


#: elements compared at a time (float64 temporaries of a few MiB, whatever the outputs' size)
_COMPARE_CHUNK = 1 << 20


def compare_outputs(reference: Dict[str, np.ndarray], actual: Dict[str, np.ndarray]) -> Dict[str, tuple]:
    """``{name: (max abs diff, max rel diff, mean abs diff)}`` for the names both sides have.

    Element-wise, in float64: rel is abs / max(|reference|, 1e-6); the mean
    abs diff of 0 / 1 outputs (binary masks) is the fraction of elements that
    differ. Arrays of different shapes give ``inf`` for all three; empty ones
    0. Names only one side has are left out (the caller can tell from the
    keys). Large outputs (masks of full-size images) are compared in chunks.
    """
    diffs = {}
    for name, ref in reference.items():
        if name not in actual:
            continue
        ref, got = np.asarray(ref), np.asarray(actual[name])
        if ref.shape != got.shape:
            diffs[name] = (float('inf'),) * 3
            continue
        if ref.size == 0:
            diffs[name] = (0.0, 0.0, 0.0)
            continue
        ref, got = ref.reshape(-1), got.reshape(-1)
        max_abs, max_rel, total = 0.0, 0.0, 0.0
        for start in range(0, ref.size, _COMPARE_CHUNK):
            expected = ref[start:start + _COMPARE_CHUNK].astype(np.float64)
            abs_diff = np.abs(expected - got[start:start + _COMPARE_CHUNK].astype(np.float64))
            rel = abs_diff / np.maximum(np.abs(expected), 1e-6)
            # max() of numpy keeps a NaN; python's max() would not
            max_abs = float(np.max([max_abs, abs_diff.max()]))
            max_rel = float(np.max([max_rel, rel.max()]))
            total += float(abs_diff.sum())
        diffs[name] = (max_abs, max_rel, total / ref.size)
    return diffs


def check_arrays(reference: Dict[str, np.ndarray], actual: Dict[str, np.ndarray],
                 atol: Mapping[str, float]) -> List[OutputCheck]:
    """One check per output: passed when the max abs diff is at most ``atol[name]``.

    A shape mismatch or a NaN fails; a name only one side gives fails too
    (the backend model must give what PyTorch gives).
    """
    checks = []
    diffs = compare_outputs(reference, actual)
    for name in reference:
        if name not in actual:
            checks.append(OutputCheck(name, False, 'PyTorch gives it, the backend does not'))
            continue
        max_abs, max_rel, mean_abs = diffs[name]
        shape_ref, shape_got = np.shape(reference[name]), np.shape(actual[name])
        if shape_ref != shape_got:
            checks.append(OutputCheck(name, False, f'shape {list(shape_got)} on the backend, '
                                                   f'{list(shape_ref)} in PyTorch', max_abs, max_rel, mean_abs))
            continue
        tol = float(atol[name])
        passed = bool(max_abs <= tol)  # False for NaN
        checks.append(OutputCheck(name, passed, f'max abs diff {max_abs:.3g} ({"<=" if passed else ">"} '
                                                f'tolerance {tol:g})', max_abs, max_rel, mean_abs))
    for name in actual:
        if name not in reference:
            checks.append(OutputCheck(name, False, 'the backend gives it, PyTorch does not'))
    return checks


@dataclass
class DetectionMatch:
    """How the detections of one image (or a batch, merged) pair up.

    Attributes:
        pairs: ``(expected index, actual index)`` of paired detections, each
            within tolerance or not (see ``within``).
        within: per pair, whether box and score are within tolerance.
        unpaired_expected / unpaired_actual: indices left without a
            counterpart of the same label.
        box_diffs / score_diffs: per pair, largest box-coordinate and score
            difference.
    """

    pairs: List[Tuple[int, int]] = field(default_factory=list)
    within: List[bool] = field(default_factory=list)
    unpaired_expected: List[int] = field(default_factory=list)
    unpaired_actual: List[int] = field(default_factory=list)
    box_diffs: List[float] = field(default_factory=list)
    score_diffs: List[float] = field(default_factory=list)

    @property
    def matched(self) -> int:
        """Pairs within tolerance."""
        return int(sum(self.within))

    @property
    def max_box_diff(self) -> float:
        """Largest box difference over the pairs (0 without pairs)."""
        return max(self.box_diffs, default=0.0)

    @property
    def max_score_diff(self) -> float:
        """Largest score difference over the pairs (0 without pairs)."""
        return max(self.score_diffs, default=0.0)

    @property
    def all_matched(self) -> bool:
        """Same count, and every detection paired within tolerance."""
        return not self.unpaired_expected and not self.unpaired_actual and all(self.within)


def match_detections(expected: Sequence[Any], actual: Sequence[Any], box_atol: float,
                     score_atol: float) -> DetectionMatch:
    """Pair the detections of PyTorch (``expected``) and a backend (``actual``) of one image.

    Both are ``(boxes [K, 4], scores [K], labels [K])``. Detections are
    matched, not compared by position: scores closer than float rounding may
    sort either way. The rule: in order of decreasing expected score, each
    expected detection takes the unused actual detection of the same label
    with the smallest cost ``max(box diff / box_atol, score diff /
    score_atol)`` (box diff: the largest coordinate difference); a pair is
    within tolerance when its cost is at most 1. Detections with no unused
    counterpart of their label stay unpaired.
    """
    boxes_e, scores_e, labels_e = (np.asarray(v, dtype=np.float64) for v in expected)
    boxes_a, scores_a, labels_a = (np.asarray(v, dtype=np.float64) for v in actual)
    boxes_e, boxes_a = boxes_e.reshape(-1, 4), boxes_a.reshape(-1, 4)
    scores_e, scores_a = scores_e.reshape(-1), scores_a.reshape(-1)
    labels_e, labels_a = labels_e.reshape(-1), labels_a.reshape(-1)
    match = DetectionMatch()
    used = np.zeros(len(scores_a), bool)
    box_diff = np.abs(boxes_e[:, None, :] - boxes_a[None, :, :]).max(-1) if len(scores_a) else None
    score_diff = np.abs(scores_e[:, None] - scores_a[None, :]) if len(scores_a) else None
    for i in np.argsort(-scores_e, kind='stable'):
        candidates = np.flatnonzero(~used & (labels_a == labels_e[i])) if len(scores_a) else np.array([], int)
        if candidates.size == 0:
            match.unpaired_expected.append(int(i))
            continue
        cost = np.maximum(box_diff[i, candidates] / box_atol, score_diff[i, candidates] / score_atol)
        cost = np.where(np.isnan(cost), np.inf, cost)
        best = int(candidates[int(np.argmin(cost))])
        used[best] = True
        match.pairs.append((int(i), best))
        match.within.append(bool(np.min(cost) <= 1))
        match.box_diffs.append(float(box_diff[i, best]))
        match.score_diffs.append(float(score_diff[i, best]))
    match.unpaired_actual = [int(j) for j in np.flatnonzero(~used)]
    return match


def resolve_tolerances(verify_cfg: Optional[Mapping[str, Any]], defaults: Mapping[str, float],
                       task_name: str) -> Dict[str, float]:
    """The task's default tolerances, overridden by the deploy config's ``verify_config``.

    Raises:
        ConfigError: a key that is no tolerance of the task (naming the
            closest), or a value that is not a number >= 0.
    """
    tolerances = dict(defaults)
    for key, value in (verify_cfg or {}).items():
        if key in VERIFY_SWITCHES:
            if not isinstance(value, bool):
                raise ConfigError(f'verify_config.{key} must be True or False, got {value!r}')
            continue
        if key not in defaults:
            close = difflib.get_close_matches(str(key), list(defaults) + list(VERIFY_SWITCHES), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ''
            raise ConfigError(f'verify_config.{key} is not a tolerance of {task_name}; {hint}'
                              f'known: {", ".join(sorted(defaults))}, second_shape')
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise ConfigError(f'verify_config.{key} must be a number >= 0, got {value!r}')
        tolerances[key] = float(value)
    return tolerances


def declared_dynamic_axes(ir_cfg: Mapping[str, Any]) -> Dict[int, str]:
    """``{axis: label}`` of the first input's axes that ``onnx_config.dynamic_axes`` declares dynamic.

    ``dynamic_axes`` entries may be dicts (``{0: 'batch'}``) or lists of axes
    (``[0, 2, 3]``, labelled ``batch`` / ``height`` / ``width`` by position).
    """
    dynamic_axes = ir_cfg.get('dynamic_axes') or {}
    names = ir_cfg.get('input_names') or ['input']
    axes = dynamic_axes.get(names[0]) if isinstance(dynamic_axes, Mapping) else None
    default_labels = {0: 'batch', 1: 'channel', 2: 'height', 3: 'width'}
    if isinstance(axes, Mapping):
        return {int(axis): str(label) for axis, label in axes.items()}
    if isinstance(axes, (list, tuple)):
        return {int(axis): default_labels.get(int(axis), f'axis{axis}') for axis in axes}
    return {}


def fixed_dynamic_axes(onnx_file: str, input_name: str, axes: Mapping[int, str]) -> List[str]:
    """Declared dynamic axes that ``onnx_file`` fixes to a number: ``["axis 0 ('batch') is fixed to 1"]``."""
    import onnx

    model = onnx.load(onnx_file, load_external_data=False)
    graph_inputs = {i.name: i for i in model.graph.input}
    graph_input = graph_inputs.get(input_name) or (model.graph.input[0] if model.graph.input else None)
    if graph_input is None:
        return []
    dims = graph_input.type.tensor_type.shape.dim
    fixed = []
    for axis, label in sorted(axes.items()):
        if axis < len(dims) and dims[axis].HasField('dim_value'):
            fixed.append(f'axis {axis} ({label!r}) is fixed to {dims[axis].dim_value}')
    return fixed
