"""Text recognition task of mmocr (CRNN, SAR, SATRN): class probabilities in the graph, decoding outside."""
from __future__ import annotations

import copy
import inspect
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from mmdeploy.codebase.base.task import BaseTask
from mmdeploy.codebase.mmocr.backend_model import PostprocessedBackendModel
from mmdeploy.codebase.mmocr.pipeline import deploy_pipeline, model_name, sdk_preprocess

#: name of the dictionary file written beside the model (deploy.json ``customs``), as the original SDK reads it
DICT_FILE = 'dict_file.txt'
#: padding to a fixed width only sets valid_ratio < 1; the deployed pipeline keeps images unpadded instead
#: (the rewrites rely on it, see mmdeploy/codebase/mmocr/rewrites.py)
_UNPADDED = ('PadToWidth',)
#: pipeline.json's postprocess component per mmocr postprocessor, as in the original SDK
_SDK_CONVERTERS = {'CTCPostProcessor': 'CTCConvertor', 'AttentionPostprocessor': 'AttnConvertor'}


class TextRecognitionBackendModel(PostprocessedBackendModel):
    """Runs a backend text recogniser; returns mmocr TextRecogDataSamples (``pred_text.item`` / ``score``).

    Args:
        wrapper: the backend wrapper.
        data_preprocessor: the config's ``TextRecogDataPreprocessor``.
        postprocessor: mmocr's postprocessor (``CTCPostProcessor``,
            ``AttentionPostprocessor``) with the model's dictionary.
        output_name: the graph output holding the ``[N, T, C]`` probabilities.
    """


def text_of(result: Any) -> Tuple[str, List[float]]:
    """``(string, per-character scores)`` of one TextRecogDataSample."""
    score = result.pred_text.get('score', [])
    score = [float(s) for s in (score if isinstance(score, (list, tuple, np.ndarray)) else [score])]
    return str(result.pred_text.item), score


class TextRecognition(BaseTask):
    """mmocr text recognition: the graph returns per-step class probabilities, the dictionary decodes them."""

    codebase = 'mmocr'
    task = 'TextRecognition'
    data_preprocessor_type = 'TextRecogDataPreprocessor'
    sdk_task = 'TextRecognizer'
    sdk_module = 'mmocr'
    export_entry_methods = ('forward',)

    def _test_pipeline(self, input_shape: Optional[Sequence[int]]) -> List[Any]:
        return deploy_pipeline(self.model_cfg, input_shape, _UNPADDED)

    def build_dictionary(self) -> Any:
        """The decoder's mmocr ``Dictionary``."""
        from mmocr.registry import TASK_UTILS

        self.init_scope()
        return TASK_UTILS.build(copy.deepcopy(self.model_cfg.model.decoder.dictionary))

    def build_postprocessor(self) -> Any:
        """mmocr's postprocessor as the decoder builds it (with its dictionary and ``max_seq_len``)."""
        from mmengine.registry import MODELS

        self.init_scope()
        decoder = self.model_cfg.model.decoder
        max_seq_len = decoder.get('max_seq_len')
        if max_seq_len is None:  # the decoder class's default
            from mmocr.registry import MODELS as OCR_MODELS

            inits = (inspect.signature(k.__init__).parameters for k in OCR_MODELS.get(decoder['type']).__mro__
                     if '__init__' in vars(k))
            max_seq_len = next(p['max_seq_len'].default for p in inits if 'max_seq_len' in p)
        cfg = dict(copy.deepcopy(decoder.postprocessor), dictionary=self.build_dictionary(), max_seq_len=max_seq_len)
        return MODELS.build(cfg)

    def export_module(self, model: Any, data: Dict[str, Any]) -> Any:
        """The recogniser itself (its ``forward`` is rewritten; unverified recognisers are refused before)."""
        return model

    def build_backend_model(self, backend_files: Sequence[str]) -> TextRecognitionBackendModel:
        from mmdeploy.plugins import get_backend_manager
        from mmdeploy.utils.config import get_backend, get_ir_config

        manager = get_backend_manager(get_backend(self.deploy_cfg))
        wrapper = manager.build_wrapper(backend_files, self.device, self.deploy_cfg)
        output_names = get_ir_config(self.deploy_cfg).get('output_names') or ['output']
        return TextRecognitionBackendModel(wrapper, self.build_data_preprocessor(), self.build_postprocessor(),
                                           output_names[0])

    def outputs_for_comparison(self, results: List[Any]) -> Dict[str, np.ndarray]:
        """The decoded strings (as an object array) and the mean character score of each image."""
        texts = [text_of(r) for r in results]
        return {'texts': np.asarray([t for t, _ in texts], dtype=object),
                'scores': np.asarray([float(np.mean(s)) if s else 0.0 for _, s in texts])}

    def default_tolerances(self) -> Dict[str, float]:
        """``score_atol``: largest allowed difference of a character's probability.

        Strings must be identical (no tolerance). Float32 kernels of two
        engines move the probabilities by ~1e-6; a wrong layer or dictionary
        changes strings.
        """
        return {'score_atol': 1e-3}

    def compare_results(self, torch_results: List[Any], backend_results: List[Any],
                        tolerances: Dict[str, float]) -> Tuple[List[Any], List[str]]:
        """Identical strings per image; character scores within ``score_atol`` where the strings agree."""
        from mmdeploy.apis.verify import OutputCheck

        expected = [text_of(r) for r in torch_results]
        actual = [text_of(r) for r in backend_results]
        differing = [f'{e[0]!r} vs {a[0]!r}' for e, a in zip(expected, actual) if e[0] != a[0]]
        same = len(expected) == len(actual) and not differing
        checks = [OutputCheck('texts', same, f'{len(expected) - len(differing)}/{len(expected)} strings identical'
                              + (f' (PyTorch vs backend: {"; ".join(differing[:3])})' if differing else '')
                              + f': {", ".join(repr(t) for t, _ in expected[:4])}')]
        diffs = [abs(x - y) for e, a in zip(expected, actual) if e[0] == a[0] and len(e[1]) == len(a[1])
                 for x, y in zip(e[1], a[1])]
        if diffs:
            worst = max(diffs)
            checks.append(OutputCheck('char_scores', worst <= tolerances['score_atol'],
                                      f'max abs diff {worst:.3g} (tolerance {tolerances["score_atol"]:g})',
                                      worst, None, None))
        notes = ['every string is empty on both sides: only their emptiness was compared'] \
            if same and not any(t for t, _ in expected) else []
        return checks, notes

    def visualize(self, image: np.ndarray, result: Any, output_file: str, title: str,
                  classes: Optional[Sequence[str]] = None) -> None:
        from mmdeploy.codebase.mmocr.drawing import draw_text
        from mmdeploy.utils.files import atomic_write_image

        text, scores = text_of(result)
        atomic_write_image(output_file, draw_text(image, text, float(np.mean(scores)) if scores else 0.0, title))

    def get_model_name(self) -> str:
        return model_name(self.model_cfg)

    def get_preprocess(self) -> List[Dict[str, Any]]:
        return sdk_preprocess(self.model_cfg, self.ir_input_shape(), self.data_preprocessor_cfg(), _UNPADDED,
                              meta_keys=('filename', 'ori_shape', 'img_shape', 'valid_ratio'))

    def get_postprocess(self) -> Dict[str, Any]:
        decoder = self.model_cfg.model.decoder
        post_type = (decoder.get('postprocessor') or {}).get('type', '')
        dictionary = dict(copy.deepcopy(decoder.dictionary))
        dictionary.pop('type', None)
        dictionary['dict_file'] = DICT_FILE
        ignore_chars = (decoder.get('postprocessor') or {}).get('ignore_chars')
        if ignore_chars is not None:  # the SDK decodes with mmocr's default ['padding'] otherwise
            dictionary['ignore_chars'] = list(ignore_chars)
        return dict(type=_SDK_CONVERTERS.get(post_type, post_type), params=dictionary)

    def sdk_custom_files(self) -> Dict[str, bytes]:
        """The dictionary, written beside the model as ``dict_file.txt`` (listed in deploy.json ``customs``)."""
        with open(self.model_cfg.model.decoder.dictionary.dict_file, 'rb') as f:
            return {DICT_FILE: f.read()}
