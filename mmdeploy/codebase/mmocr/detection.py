"""Text detection task of mmocr (DBNet, DBNet++, PANet, PSENet): maps in the graph, polygons outside."""
from __future__ import annotations

import copy
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from mmdeploy.codebase.base.device import host_array
from mmdeploy.codebase.base.task import BaseTask
from mmdeploy.codebase.mmocr.backend_model import PostprocessedBackendModel
from mmdeploy.codebase.mmocr.pipeline import deploy_pipeline, model_name, sdk_preprocess

#: heads whose maps the graph returns and whose postprocessor runs outside, verified against PyTorch
SUPPORTED_HEADS = ('DBHead', 'PANHead', 'PSEHead')


class TextDetectionBackendModel(PostprocessedBackendModel):
    """Runs a backend text detector; returns mmocr TextDetDataSamples (``pred_instances.polygons`` / ``scores``).

    Args:
        wrapper: the backend wrapper.
        data_preprocessor: the config's ``TextDetDataPreprocessor``.
        postprocessor: the head's mmocr postprocessor (``DBPostprocessor``, ...).
        output_name: the graph output holding the maps.
    """


def hausdorff(points_a: np.ndarray, points_b: np.ndarray) -> float:
    """Symmetric Hausdorff distance between two vertex sets ``[K, 2]`` (vertex order does not matter)."""
    distances = np.linalg.norm(points_a[:, None, :] - points_b[None, :, :], axis=-1)
    return float(max(distances.min(axis=1).max(), distances.min(axis=0).max()))


def match_polygons(expected: Sequence[Any], actual: Sequence[Any]) -> List[Tuple[int, int, float]]:
    """Pair each expected polygon with the unused actual one of least Hausdorff distance.

    Returns ``(expected index, actual index, distance)``; extra polygons of
    either side stay unpaired.
    """
    pairs, used = [], set()
    points_a = [np.asarray(p, np.float64).reshape(-1, 2) for p in actual]
    for i, polygon in enumerate(expected):
        points = np.asarray(polygon, np.float64).reshape(-1, 2)
        candidates = [(hausdorff(points, b), j) for j, b in enumerate(points_a) if j not in used]
        if candidates:
            distance, j = min(candidates)
            used.add(j)
            pairs.append((i, j, distance))
    return pairs


def polygons_of(result: Any) -> Tuple[List[np.ndarray], np.ndarray]:
    """``(polygons, scores)`` of one TextDetDataSample, as numpy."""
    instances = result.pred_instances
    scores = instances.get('scores', [])
    scores = host_array(scores) if hasattr(scores, 'shape') and not isinstance(scores, np.ndarray) else scores
    return [np.asarray(p, np.float64) for p in instances.get('polygons', [])], np.asarray(scores, np.float64)


class TextDetection(BaseTask):
    """mmocr text detection: the graph returns the head's maps, mmocr's postprocessor makes polygons."""

    codebase = 'mmocr'
    task = 'TextDetection'
    data_preprocessor_type = 'TextDetDataPreprocessor'
    sdk_task = 'TextDetector'
    sdk_module = 'mmocr'
    export_entry_methods = ('forward',)

    def _test_pipeline(self, input_shape: Optional[Sequence[int]]) -> List[Any]:
        return deploy_pipeline(self.model_cfg, input_shape)

    def build_postprocessor(self) -> Any:
        """mmocr's postprocessor of the head, built alone from the model config."""
        from mmengine.registry import MODELS

        self.init_scope()
        return MODELS.build(copy.deepcopy(self.model_cfg.model.det_head.postprocessor))

    def export_module(self, model: Any, data: Dict[str, Any]) -> Any:
        """The detector itself (its ``forward`` is rewritten); heads other than :data:`SUPPORTED_HEADS` are refused."""
        from mmdeploy.errors import UnsupportedModelError

        head = type(getattr(model, 'det_head', None)).__name__
        if head not in SUPPORTED_HEADS:
            raise UnsupportedModelError(f'{type(model).__name__} cannot be exported: its head {head} is not one '
                                        f'mmdeploy verified for text detection ({", ".join(SUPPORTED_HEADS)}); '
                                        f'deploy DBNet, DBNet++, PANet or PSENet')
        return model

    def build_backend_model(self, backend_files: Sequence[str]) -> TextDetectionBackendModel:
        from mmdeploy.plugins import get_backend_manager
        from mmdeploy.utils.config import get_backend, get_ir_config

        manager = get_backend_manager(get_backend(self.deploy_cfg))
        wrapper = manager.build_wrapper(backend_files, self.device, self.deploy_cfg)
        output_names = get_ir_config(self.deploy_cfg).get('output_names') or ['output']
        return TextDetectionBackendModel(wrapper, self.build_data_preprocessor(), self.build_postprocessor(),
                                         output_names[0])

    def outputs_for_comparison(self, results: List[Any]) -> Dict[str, np.ndarray]:
        """Scores of every image (concatenated) and polygon count; polygons are matched in :meth:`compare_results`."""
        scores = [polygons_of(r)[1] for r in results]
        return {'scores': np.concatenate(scores) if scores else np.zeros(0),
                'num_polygons': np.asarray([len(s) for s in scores])}

    def default_tolerances(self) -> Dict[str, float]:
        """``polygon_atol`` (px, Hausdorff distance of the vertices in the original image) and ``score_atol``.

        Float32 kernels of two engines move DB / PAN maps by ~1e-6: a contour
        pixel flips only where a map value sits on the threshold, which moves
        a vertex by about one map pixel (times the resize factor). A wrong
        layer or normalisation moves polygons far more or changes their count.
        """
        return {'polygon_atol': 2.0, 'score_atol': 1e-3}

    def compare_results(self, torch_results: List[Any], backend_results: List[Any],
                        tolerances: Dict[str, float]) -> Tuple[List[Any], List[str]]:
        """Same polygon count per image; each PyTorch polygon paired with a backend one within tolerance."""
        from mmdeploy.apis.verify import OutputCheck

        counts, worst_distance, worst_score, failed, total = [], 0.0, 0.0, 0, 0
        for expected, actual in zip(torch_results, backend_results):
            polys_e, scores_e = polygons_of(expected)
            polys_a, scores_a = polygons_of(actual)
            counts.append((len(polys_e), len(polys_a)))
            for i, j, distance in match_polygons(polys_e, polys_a):
                total += 1
                score_diff = abs(float(scores_e[i]) - float(scores_a[j]))
                worst_distance, worst_score = max(worst_distance, distance), max(worst_score, score_diff)
                failed += distance > tolerances['polygon_atol'] or score_diff > tolerances['score_atol']
        same_count = all(e == a for e, a in counts)
        count_text = ', '.join(f'{e} vs {a}' for e, a in counts)
        checks = [OutputCheck('num_polygons', same_count, f'polygons per image (PyTorch vs backend): {count_text}')]
        notes = []
        if total:
            checks.append(OutputCheck(
                'polygons', failed == 0,
                f'{total - failed}/{total} polygons matched (largest vertex distance {worst_distance:.3g} px, '
                f'tolerance {tolerances["polygon_atol"]:g}; largest score diff {worst_score:.3g}, tolerance '
                f'{tolerances["score_atol"]:g})', worst_distance, None, None))
        elif same_count:
            notes.append('0 polygons on both sides: nothing compared')
        return checks, notes

    def visualize(self, image: np.ndarray, result: Any, output_file: str, title: str,
                  classes: Optional[Sequence[str]] = None) -> None:
        from mmdeploy.codebase.mmocr.drawing import draw_polygons
        from mmdeploy.utils.files import atomic_write_image

        polygons, scores = polygons_of(result)
        atomic_write_image(output_file, draw_polygons(image, polygons, scores, title))

    def get_model_name(self) -> str:
        return model_name(self.model_cfg)

    def get_preprocess(self) -> List[Dict[str, Any]]:
        return sdk_preprocess(self.model_cfg, self.ir_input_shape(), self.data_preprocessor_cfg(),
                              meta_keys=('filename', 'ori_shape', 'img_shape', 'scale_factor'))

    def get_postprocess(self) -> Dict[str, Any]:
        head = self.model_cfg.model.det_head
        params = dict(copy.deepcopy(head.get('postprocessor') or {}))
        params['postprocessor'] = params.pop('type', '')
        return dict(type=head.get('type', 'DBHead'), params=params)
