"""Text recognition postprocess: per-step class probabilities ``[T, C]`` -> a string (``CTCConvertor``,
``AttnConvertor``).

The dictionary is rebuilt as mmocr's ``Dictionary`` builds it (one character
per line of the model folder's ``dict_file``, then the special tokens in
mmocr's order), and decoded as mmocr's ``CTCPostProcessor`` (greedy,
repeats and ignored classes dropped, up to ``ceil(T * valid_ratio)`` steps)
and ``AttentionPostprocessor`` (greedy, stops at the end token) do.
"""
from __future__ import annotations

import math
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from mmdeploy.sdk.errors import SDKModelDirError, SDKPipelineError
from mmdeploy.sdk.results import TextRecognition


class Dictionary:
    """The characters of a recogniser and the indices of its special tokens (mmocr's ``Dictionary``).

    Args:
        chars: the dictionary file's characters, in order.
        **options: mmocr's flags and token names (``with_start``,
            ``with_end``, ``same_start_end``, ``with_padding``,
            ``with_unknown``, ``start_token``, ``end_token``,
            ``start_end_token``, ``padding_token``, ``unknown_token``).
    """

    def __init__(self, chars: Sequence[str], **options: Any) -> None:
        self.chars: List[str] = list(chars)
        self.start_idx = self.end_idx = self.padding_idx = self.unknown_idx = None
        if options.get('with_start') and options.get('with_end') and options.get('same_start_end'):
            self.start_idx = self.end_idx = self._append(options.get('start_end_token', '<BOS/EOS>'))
        else:
            if options.get('with_start'):
                self.start_idx = self._append(options.get('start_token', '<BOS>'))
            if options.get('with_end'):
                self.end_idx = self._append(options.get('end_token', '<EOS>'))
        if options.get('with_padding'):
            self.padding_idx = self._append(options.get('padding_token', '<PAD>'))
        unknown = options.get('unknown_token', '<UKN>')
        if options.get('with_unknown') and unknown is not None:
            self.unknown_idx = self._append(unknown)
        self.index = {char: i for i, char in enumerate(self.chars)}

    def _append(self, token: str) -> int:
        self.chars.append(token)
        return len(self.chars) - 1

    @classmethod
    def from_file(cls, path: str, **options: Any) -> 'Dictionary':
        """Read ``path`` (UTF-8, one character per line; empty lines skipped, as mmocr does)."""
        if not os.path.isfile(path):
            raise SDKModelDirError(f'dictionary file {path!r} not found; redeploy the recogniser (mmdeploy '
                                   f'deploy writes dict_file.txt beside the model)')
        with open(path, encoding='utf-8') as f:
            lines = [line.rstrip('\n\r').strip('\r\n') for line in f]
        bad = next((i for i, line in enumerate(lines) if len(line) > 1), None)
        if bad is not None:
            raise SDKModelDirError(f'dictionary file {path!r} line {bad + 1} holds {lines[bad]!r}: one character '
                                   f'per line expected; give the dictionary the model was trained with')
        return cls([line for line in lines if line], **options)

    def ignored_indices(self, ignore_chars: Sequence[str]) -> List[int]:
        """Indices of ``ignore_chars``: characters or ``'padding'`` / ``'end'`` / ``'unknown'``.

        Those the dictionary lacks are skipped, as mmocr does (it warns).
        """
        special = {'padding': self.padding_idx, 'end': self.end_idx, 'unknown': self.unknown_idx}
        indices = []
        for char in ignore_chars:
            if char in special:
                index = special[char]
            else:
                index = self.index.get(char, self.unknown_idx)
            if index is None or (index == self.unknown_idx and char != 'unknown'):
                continue
            indices.append(index)
        return indices

    def text(self, indices: Sequence[int]) -> str:
        """The string of ``indices``."""
        return ''.join(self.chars[i] for i in indices)


_DICT_OPTIONS = ('with_start', 'with_end', 'same_start_end', 'with_padding', 'with_unknown', 'start_token',
                 'end_token', 'start_end_token', 'padding_token', 'unknown_token')


def _model_folder(model: Any) -> str:
    """The folder of the deployed model (the ModelDir's path, or a plain path)."""
    if isinstance(model, (str, os.PathLike)):
        return os.fspath(model)
    for attr in ('path', 'root', 'model_dir', 'folder'):
        value = getattr(model, attr, None)
        if isinstance(value, (str, os.PathLike)):
            return os.fspath(value)
    raise SDKPipelineError(f'cannot tell the folder of {model!r} to read the dictionary from')


class _Convertor:
    """Shared by the decoders: the dictionary and the ignored classes, from pipeline.json's params.

    Args:
        params: the dictionary's options and ``dict_file`` (a file name in
            the model folder), and ``ignore_chars`` (mmocr's default
            ``['padding']``).
        model: the model folder (its ``path``), where ``dict_file`` is.
    """

    def __init__(self, params: Dict[str, Any], model: Any = None) -> None:
        dict_file = params.get('dict_file')
        if not dict_file:
            raise SDKPipelineError(f'{type(self).__name__} params have no dict_file; redeploy the recogniser')
        path = dict_file if os.path.isabs(dict_file) else os.path.join(_model_folder(model), dict_file)
        self.dictionary = Dictionary.from_file(path, **{k: params[k] for k in _DICT_OPTIONS if k in params})
        self.ignored = set(self.dictionary.ignored_indices(params.get('ignore_chars', ['padding'])))

    def decode(self, probs: np.ndarray, meta: Dict[str, Any]) -> Tuple[List[int], List[float]]:
        raise NotImplementedError

    def __call__(self, outputs: Dict[str, np.ndarray], meta: Dict[str, Any]) -> TextRecognition:
        """The ``[T, C]`` probabilities of one image (first output) -> string, mean and per-character scores."""
        probs = np.asarray(next(iter(outputs.values())), np.float32)
        probs = probs.reshape(-1, probs.shape[-1])
        indices, scores = self.decode(probs, meta)
        char_scores = np.asarray(scores, np.float32)
        return TextRecognition(text=self.dictionary.text(indices),
                               score=float(np.mean(scores)) if scores else 0.0, char_scores=char_scores)


class CTCConvertor(_Convertor):
    """CTC decoding (CRNN): mmocr's ``CTCPostProcessor``."""

    def decode(self, probs: np.ndarray, meta: Dict[str, Any]) -> Tuple[List[int], List[float]]:
        steps = probs.shape[0]
        length = min(steps, math.ceil(steps * float(meta.get('valid_ratio', 1) or 1)))
        best, values = probs.argmax(axis=1), probs.max(axis=1)
        indices: List[int] = []
        scores: List[float] = []
        previous: Optional[int] = self.dictionary.padding_idx
        for t in range(length):
            index = int(best[t])
            if index != previous and index not in self.ignored:
                indices.append(index)
                scores.append(float(values[t]))
            previous = index
        return indices, scores


class AttnConvertor(_Convertor):
    """Attention decoding (SAR, SATRN, NRTR, ...): mmocr's ``AttentionPostprocessor``."""

    def decode(self, probs: np.ndarray, meta: Dict[str, Any]) -> Tuple[List[int], List[float]]:
        indices: List[int] = []
        scores: List[float] = []
        for index, value in zip(probs.argmax(axis=1).tolist(), probs.max(axis=1).tolist()):
            if index in self.ignored:
                continue
            if index == self.dictionary.end_idx:
                break
            indices.append(index)
            scores.append(float(value))
        return indices, scores
