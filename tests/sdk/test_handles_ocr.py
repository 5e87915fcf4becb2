"""SDK TextDetector, TextRecognizer and TextOCR vs the converter's mmocr backend models and det -> rec pair.

DBNet R-18 (static 160x128) and CRNN (static 100x32) with random weights rigged
to predict something (the detector finds the bright strokes:
``ocr_models.write_rigged_checkpoint``; the recogniser reads strings of several
characters: :func:`write_reading_checkpoint`) are deployed with
the shipped ONNX Runtime configs and the TorchScript exporter ([torchscript]).
Random weights read no real text: the pair is compared for structure and
equality with the converter's :class:`~mmdeploy.codebase.mmocr.ocr_pair.OCRPair`,
not for correctness. The SDK runs in a subprocess where importing mmocr, mmcv
and mmengine fails.

Tolerances: the same polygon count; every converter polygon paired with an
SDK polygon whose vertices lie within 1 px (symmetric Hausdorff distance;
both sides run the same ONNX file on bit-identical inputs and the same contour
steps, measured 0); scores within 1e-4; strings identical.
"""
from __future__ import annotations

import json
import os
import sys

import cv2
import numpy as np
import pytest
import torch

from handles_tasks_helpers import REPO, converter_model, converter_results, deploy_folder, run_sdk_isolated

sys.path.insert(0, os.path.join(REPO, 'tests', 'mmocr'))
from ocr_models import det_image, rec_image, write_config, write_rigged_checkpoint  # noqa: E402

DET_CFG = os.path.join(REPO, 'configs', 'mmocr', 'text-detection', 'text-detection_onnxruntime_static.py')
REC_CFG = os.path.join(REPO, 'configs', 'mmocr', 'text-recognition', 'text-recognition_onnxruntime_static.py')
POLYGON_ATOL = 1.0
SCORE_ATOL = 1e-4


def text_scene(height: int = 120, width: int = 160) -> np.ndarray:
    """Rendered words (bright, thick strokes) on a dark noisy background, one of them slanted; BGR uint8."""
    rng = np.random.default_rng(5)
    image = (rng.random((height, width, 3)) * 40).astype(np.uint8)
    cv2.putText(image, 'SDK', (10, 35), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (235, 235, 235), 3)
    cv2.putText(image, 'ocr', (70, 95), cv2.FONT_HERSHEY_SIMPLEX, 1.1, (220, 230, 240), 3)
    slanted = np.zeros_like(image)
    cv2.putText(slanted, 'mm', (95, 40), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (230, 230, 230), 3)
    rotation = cv2.getRotationMatrix2D((115, 35), 25, 1.0)
    return np.maximum(image, cv2.warpAffine(slanted, rotation, (width, height)))


def write_reading_checkpoint(task, image: np.ndarray, path: str) -> str:
    """A random recogniser (seeded) that reads strings of several characters; saved as ``{'state_dict': ...}``.

    The features reaching the classifier (the decoder's last Linear) vary
    little along a random network's sequence, so every step would pick one
    class. The classifier gets random weights applied to the features
    standardised over the steps of ``image`` (logit spread 4): each step then
    picks its class from how its features differ from the others'.
    """
    torch.manual_seed(0)
    model = task.build_pytorch_model()
    linear = [m for m in model.decoder.modules() if isinstance(m, torch.nn.Linear)][-1]
    features = []
    hook = linear.register_forward_hook(lambda m, args, out: features.append(args[0].detach()))
    try:
        task.run_pytorch(model, task.create_input([image], task.ir_input_shape())[0])
    finally:
        hook.remove()
    steps = features[0].reshape(-1, features[0].shape[-1])
    mean, std = steps.mean(0), steps.std(0) + 1e-6
    weight = torch.randn(linear.weight.shape, generator=torch.Generator().manual_seed(0))
    scale = 4.0 / float((((steps - mean) / std) @ weight.T).std())
    with torch.no_grad():
        linear.weight.copy_(weight / std * scale)
        linear.bias.copy_(-((mean / std) @ weight.T) * scale)
    torch.save({'state_dict': model.state_dict()}, path)
    return path


SCENES = [text_scene(), det_image()]
WORDS = [rec_image(), rec_image(40, 150)]


@pytest.fixture(scope='module')
def ocr(tmp_path_factory):
    """DBNet and CRNN deployed; the converter's results and pair; the SDK's (one subprocess)."""
    from mmdeploy.apis.pytorch2onnx import build_task_processor
    from mmdeploy.codebase.mmocr.ocr_pair import OCRPair, export_pair_meta
    from mmdeploy.utils.config import load_config

    folder = tmp_path_factory.mktemp('sdk_ocr')
    det_cfg = str(folder / 'det_static.py')
    with open(det_cfg, 'w') as f:
        f.write(f'_base_ = [{DET_CFG!r}]\nonnx_config = dict(input_shape=[160, 128])\n')
    dirs, models = {}, {}
    for role, name, deploy_cfg, image in (('det', 'dbnet', det_cfg, SCENES[0]),
                                          ('rec', 'crnn', REC_CFG, WORDS[0])):
        models[role] = write_config(name, str(folder))
        task = build_task_processor(load_config(models[role]), load_config(deploy_cfg))
        write = write_rigged_checkpoint if role == 'det' else write_reading_checkpoint
        checkpoint = write(task, image, str(folder / f'{name}.pth'))
        dirs[role] = deploy_folder(deploy_cfg, models[role], image, str(folder / name), checkpoint)
    pair_dir = str(folder / 'pair')
    export_pair_meta(dirs['det'], dirs['rec'], pair_dir)
    pair = OCRPair.__new__(OCRPair)  # OCRPair(det_dir, rec_dir, ...) with the backend models built once
    pair.detector = converter_model(dirs['det'], models['det'])
    pair.recognizer = converter_model(dirs['rec'], models['rec'])
    expected = dict(det=converter_results(dirs['det'], models['det'], SCENES, model=pair.detector),
                    rec=converter_results(dirs['rec'], models['rec'], WORDS, model=pair.recognizer),
                    pair=[pair(image) for image in SCENES])
    sdk = run_sdk_isolated([dict(handle='TextDetector', dirs=[dirs['det']], images=SCENES),
                            dict(handle='TextRecognizer', dirs=[dirs['rec']],
                                 images=WORDS + [cv2.cvtColor(WORDS[0], cv2.COLOR_BGR2GRAY)]),
                            dict(handle='TextOCR', dirs=[dirs['det'], dirs['rec']], images=SCENES),
                            dict(handle='TextOCR', dirs=[pair_dir], images=SCENES[:1])], str(folder))
    return dict(dirs=dirs, expected=expected, det=sdk[0], rec=sdk[1], ocr=sdk[2], ocr_pair_dir=sdk[3])


def _assert_polygons_match(expected_polygons, expected_scores, polygons, scores):
    from mmdeploy.codebase.mmocr.detection import match_polygons

    assert len(polygons) == len(expected_polygons)
    pairs = match_polygons(expected_polygons, polygons)
    assert len(pairs) == len(polygons)
    for i, j, distance in pairs:
        assert distance <= POLYGON_ATOL, (i, j, distance)
        assert abs(float(expected_scores[i]) - float(scores[j])) <= SCORE_ATOL
    return pairs


def test_text_detector_matches_converter(ocr):
    """Polygons (original-image pixels, float32 (K, 2)) and scores as mmocr's DBPostprocessor gives them."""
    from mmdeploy.codebase.mmocr.detection import polygons_of

    for image, result, sample in zip(SCENES, ocr['det'], ocr['expected']['det']):
        polygons, scores = polygons_of(sample)
        assert len(polygons) >= 2  # the rigged detector finds regions on both images
        assert all(p.dtype == np.float32 and p.ndim == 2 and p.shape[1] == 2 for p in result.polygons)
        _assert_polygons_match(polygons, scores, result.polygons, result.scores)


def test_text_recognizer_matches_converter(ocr):
    """The CTC-decoded strings and character scores of the converter (grey images: pipeline.json's loader)."""
    from mmdeploy.codebase.mmocr.recognition import text_of

    texts = []
    for result, sample in zip(ocr['rec'], ocr['expected']['rec']):
        text, char_scores = text_of(sample)
        texts.append(text)
        assert result.text == text
        np.testing.assert_allclose(result.char_scores, char_scores, atol=SCORE_ATOL, rtol=0)
        assert abs(result.score - (float(np.mean(char_scores)) if char_scores else 0.0)) <= SCORE_ATOL
    assert all(len(t) >= 3 for t in texts)  # the rigged recogniser reads strings
    grey = ocr['rec'][len(WORDS)]  # the first word given as an HxW grey array: CRNN reads grey anyway
    assert grey.text == ocr['rec'][0].text
    np.testing.assert_array_equal(grey.char_scores, ocr['rec'][0].char_scores)


def test_text_ocr_matches_converter_pair(ocr):
    """TextOCR(det_dir, rec_dir) and TextOCR(pair_dir): the converter's OCRPair regions and strings."""
    for results in (ocr['ocr'], ocr['ocr_pair_dir']):
        for result, regions in zip(results, ocr['expected']['pair']):
            pairs = _assert_polygons_match([r.polygon for r in regions], [r.det_score for r in regions],
                                           result.polygons, result.det_scores)
            assert [result.texts[j] for _, j, _ in pairs] == [regions[i].text for i, _, _ in pairs]
            np.testing.assert_allclose([result.rec_scores[j] for _, j, _ in pairs],
                                       [regions[i].text_score for i, _, _ in pairs], atol=SCORE_ATOL, rtol=0)
    assert sum(len(t) >= 2 for t in ocr['ocr'][0].texts) >= 2  # strings read, not only single characters


def test_recognizer_pipeline_json_reads_grey_and_carries_dictionary(ocr):
    """CRNN's folder: pipeline.json loads grey images; the dictionary file is beside the model."""
    rec_dir = ocr['dirs']['rec']
    tasks = json.load(open(os.path.join(rec_dir, 'pipeline.json')))['pipeline']['tasks']
    assert tasks[0]['transforms'][0] == dict(type='LoadImageFromFile', color_type='grayscale')
    assert tasks[-1]['component'] == 'CTCConvertor'
    assert os.path.isfile(os.path.join(rec_dir, tasks[-1]['params']['dict_file']))


# ---------------------------------------------------------------- components vs mmocr, on synthetic outputs
def _blob_map(seed: int, height: int = 96, width: int = 128) -> np.ndarray:
    """A probability map with a few rotated bright rectangles and noise (contours of several shapes)."""
    rng = np.random.default_rng(seed)
    canvas = np.zeros((height, width), np.float32)
    for _ in range(5):
        center = (float(rng.uniform(15, width - 15)), float(rng.uniform(10, height - 10)))
        box = cv2.boxPoints((center, (float(rng.uniform(8, 40)), float(rng.uniform(4, 14))),
                             float(rng.uniform(-60, 60))))
        cv2.fillPoly(canvas, [np.round(box).astype(np.int32)], float(rng.uniform(0.5, 0.95)))
    return np.clip(canvas + rng.normal(0, 0.05, canvas.shape).astype(np.float32), 0, 1)


@pytest.mark.parametrize('text_repr_type', ['poly', 'quad'])
@pytest.mark.parametrize('seed', [0, 1, 2])
def test_db_head_matches_mmocr_db_postprocessor(text_repr_type, seed):
    """DBHead on a map equals mmocr's DBPostprocessor (the same float32 vertices, scores within 1e-6), rescaled."""
    from mmocr.models.textdet.postprocessors import DBPostprocessor
    from mmocr.structures import TextDetDataSample

    from mmdeploy.sdk.postprocess.text_detection import DBHead

    prob_map = _blob_map(seed)
    scale = (1.25, 0.8)
    sample = TextDetDataSample(metainfo=dict(scale_factor=scale))
    params = dict(text_repr_type=text_repr_type, min_text_width=6)
    expected = DBPostprocessor(**params)(torch.from_numpy(prob_map)[None], [sample])[0].pred_instances
    result = DBHead(params)({'output': prob_map}, dict(scale_factor=scale))
    assert len(expected.polygons) >= 3 and len(result.polygons) == len(expected.polygons)
    for polygon, flat in zip(result.polygons, expected.polygons):
        np.testing.assert_array_equal(polygon.reshape(-1), np.asarray(flat, np.float32))
    np.testing.assert_allclose(result.scores, expected.scores.numpy(), atol=1e-6, rtol=0)


def _mmocr_dictionary_file(tmp_path) -> str:
    path = tmp_path / 'chars.txt'
    path.write_text('a\nb\nc\n\nd\ne\n', encoding='utf-8')  # an empty line, skipped as mmocr does
    return str(path)


@pytest.mark.parametrize('options', [
    dict(with_padding=True, with_unknown=True),
    dict(with_start=True, with_end=True, same_start_end=True, with_padding=True, with_unknown=True),
    dict(with_start=True, with_end=True, with_padding=True, ignore_chars=['padding', 'c', 'unknown']),
], ids=['ctc-like', 'same-start-end', 'ignore-chars'])
@pytest.mark.parametrize('decoder', ['CTCConvertor', 'AttnConvertor'])
def test_convertors_match_mmocr_postprocessors(tmp_path, options, decoder):
    """CTC / attention decoding with mmocr's Dictionary rules equals mmocr's postprocessors (strings exact,
    scores within 1e-6), on peaked random probabilities with repeats; CTC with valid_ratio 0.7 too."""
    from mmocr.models.textrecog.postprocessors import AttentionPostprocessor, CTCPostProcessor
    from mmocr.structures import TextRecogDataSample

    from mmdeploy.sdk.postprocess.text_recognition import AttnConvertor, CTCConvertor

    dict_file = _mmocr_dictionary_file(tmp_path)
    options = dict(options)
    ignore = options.pop('ignore_chars', ['padding'])
    mmocr_cls = CTCPostProcessor if decoder == 'CTCConvertor' else AttentionPostprocessor
    postprocessor = mmocr_cls(dictionary=dict(type='Dictionary', dict_file=dict_file, **options),
                              ignore_chars=ignore)
    sdk_cls = CTCConvertor if decoder == 'CTCConvertor' else AttnConvertor
    component = sdk_cls(dict(options, dict_file='chars.txt', ignore_chars=ignore), str(tmp_path))
    num_classes = postprocessor.dictionary.num_classes
    rng = np.random.default_rng(0)
    for trial in range(6):
        labels = np.repeat(rng.integers(0, num_classes, 8), 2)  # repeated steps, as CTC emits them
        logits = rng.normal(0, 1, (labels.size, num_classes)).astype(np.float32)
        logits[np.arange(labels.size), labels] += 4
        probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        valid_ratio = 0.7 if trial % 2 else 1.0
        sample = postprocessor(torch.from_numpy(probs)[None], [TextRecogDataSample(
            metainfo=dict(valid_ratio=valid_ratio))])[0].pred_text
        result = component({'output': probs}, dict(valid_ratio=valid_ratio))
        assert result.text == sample.item
        np.testing.assert_allclose(result.char_scores, np.asarray(sample.score, np.float32), atol=1e-6, rtol=0)


def test_missing_dictionary_and_wrong_pair_folder_are_clear_errors(ocr, tmp_path):
    """A recogniser folder without its dictionary, and TextOCR given one folder that is no pair: one error each."""
    import shutil

    from mmdeploy.sdk import SDKModelDirError, SDKPipelineError, TextOCR, TextRecognizer

    copy = str(tmp_path / 'rec')
    shutil.copytree(ocr['dirs']['rec'], copy)
    os.remove(os.path.join(copy, 'dict_file.txt'))
    with pytest.raises(SDKModelDirError, match='dict_file.txt'):
        TextRecognizer(copy)
    with pytest.raises(SDKPipelineError, match='TextDetector model, not a TextOCR pair'):
        TextOCR(ocr['dirs']['det'])
