"""Every deploy config shipped under ``configs/`` runs through ``mmdeploy deploy`` and passes its gate.

The configs are globbed (a new file is picked up without touching this test);
each gets one small model of its codebase and task (:data:`MODEL_RULES`): the
tiny classifier for mmpretrain (one ResNet stage, 32x32 input), RetinaNet R-18
for mmdet detection (its own config, images fit into 320x320), Faster R-CNN
R-18 for the two-stage partition, Mask R-CNN R-18 for instance segmentation,
FCN R-18 for mmseg (inputs fit into 160x128), DBNet R-18 / CRNN for mmocr text
detection / recognition and SRCNN for mmagic super-resolution (random weights:
their outputs are maps and sequences worth comparing as they are).
The detectors' checkpoints (session fixtures) carry score layers redrawn so
that they detect something: the gate compares real boxes (and masks), not
"0 detections on both sides".

A case passes when ``mmdeploy deploy`` exits 0, says it verified the outputs
against PyTorch (the gate's tolerances are the tasks' defaults: probabilities
within 1e-3, boxes within 1 px, scores within 1e-3, masks within 2 % of an
instance's pixels; measured differences are ~1e-5 px and ~1e-6; the other
codebases' tolerances are their task processors' defaults), wrote every
file the config implies, and, for configs declaring dynamic axes, ran the
second shape too. Deploy configs without ``backend_config`` are bases: each
must be the ``_base_`` of another config.

Ids say which exporter the config selects ([dynamo] / [torchscript]). The
detector cases take 15 to 130 s each on 2 CPU cores (dynamo exports of dynamic
detectors are the slowest) and are marked slow.
"""
from __future__ import annotations

import glob
import os

import cv2
import pytest

from mmdeploy.cli import main

from .deploy_models import REPO, TINY_CLASSIFIER, make_image, write_checkpoint, write_model_config

CONFIG_ROOT = os.path.join(REPO, 'configs')
#: models whose random heads detect nothing: their checkpoints redraw the score layers
DETECTORS = ('retinanet', 'faster_rcnn', 'mask_rcnn')
#: model -> deploy config its checkpoint is built with (models not named run with random weights)
CHECKPOINTED = {name: 'mmdet/detection/detection_onnxruntime_static.py' for name in DETECTORS}
SUFFIXES = ('.py', '.json', '.yaml', '.yml')
#: (path prefix under configs/, model) in order: the first match picks the model
MODEL_RULES = (
    ('mmpretrain/', 'tiny_classifier'),
    ('mmseg/', 'fcn'),
    ('mmocr/text-detection/', 'dbnet'),
    ('mmocr/text-recognition/', 'crnn'),
    ('mmagic/', 'srcnn'),
    ('mmdet/detection/two-stage_partition', 'faster_rcnn'),
    ('mmdet/instance-seg/', 'mask_rcnn'),
    ('mmdet/detection/', 'retinanet'),
)


def _shipped_configs():
    found = []
    for path in sorted(glob.glob(os.path.join(CONFIG_ROOT, '**', '*'), recursive=True)):
        rel = os.path.relpath(path, CONFIG_ROOT).replace(os.sep, '/')
        if path.endswith(SUFFIXES) and '_base_' not in rel.split('/'):
            found.append(rel)
    return found


def _load(rel):
    from mmdeploy.utils.config import load_config

    return load_config(os.path.join(CONFIG_ROOT, rel))


def _model_for(rel):
    return next((model for prefix, model in MODEL_RULES if rel.startswith(prefix)), None)


def _is_deploy_config(rel):
    return _load(rel).get('backend_config', None) is not None


def _exporter(rel):
    from mmdeploy.utils.config import get_ir_config

    return get_ir_config(_load(rel)).get('exporter', 'dynamo')


def _needs_cuda(rel):
    return str((_load(rel).get('backend_config', None) or {}).get('device', None) or 'cpu').startswith('cuda')


#: configs whose case compiles for minutes on 2 CPU cores (AOTInductor builds C++): run with -m extended;
#: classification_aot_inductor_dynamic.py keeps the backend in the default suite
EXTENDED = ('mmdet/detection/detection_aot_inductor_static.py', 'mmpretrain/classification_aot_inductor_static.py')


def _marks(rel):
    marks = [] if _model_for(rel) == 'tiny_classifier' else [pytest.mark.slow]
    if rel in EXTENDED:
        marks.append(pytest.mark.extended)
    if _needs_cuda(rel):  # configs written for the GPU machine (backend_config.device='cuda')
        marks.append(pytest.mark.gpu)
        marks.append(pytest.mark.skipif(not _cuda_available(), reason='deploy config for a CUDA GPU; none here'))
    return marks


def _cuda_available():
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


CONFIGS = _shipped_configs()
DEPLOY_CONFIGS = [rel for rel in CONFIGS if _is_deploy_config(rel)]
CASES = [pytest.param(rel, id=f'{rel}[{_exporter(rel)}]', marks=_marks(rel)) for rel in DEPLOY_CONFIGS]


def test_the_folder_holds_deploy_configs_of_every_codebase():
    """The glob finds the shipped configs (a moved folder must not leave the test below empty)."""
    codebases = {rel.split('/')[0] for rel in DEPLOY_CONFIGS}
    assert {'mmpretrain', 'mmdet'} <= codebases, DEPLOY_CONFIGS
    assert len(DEPLOY_CONFIGS) >= 13


def test_configs_without_a_backend_are_bases_of_others():
    bases = [rel for rel in CONFIGS if rel not in DEPLOY_CONFIGS]
    texts = {rel: open(os.path.join(CONFIG_ROOT, rel)).read() for rel in CONFIGS}
    for base in bases:
        users = [rel for rel, text in texts.items() if rel != base and os.path.basename(base) in text]
        assert users, f'{base} has no backend_config and no config inherits from it: not deployable'


@pytest.fixture(scope='session')
def image_file(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('shipped') / 'scene.png')
    cv2.imwrite(path, make_image(256, 320, seed=1))
    return path


@pytest.fixture(scope='session')
def models(tmp_path_factory, image_file):
    """``name -> (model config, checkpoint or None)``, each detector's checkpoint written once per session."""
    folder = str(tmp_path_factory.mktemp('models'))
    image = cv2.imread(image_file)
    cache = {}

    def get(name):
        if name not in cache:
            if name == 'tiny_classifier':
                cache[name] = (TINY_CLASSIFIER, None)
            elif name not in CHECKPOINTED:  # random weights give outputs worth comparing
                cache[name] = (write_model_config(name, folder), None)
            else:
                cfg = write_model_config(name, folder)
                build_cfg = os.path.join(CONFIG_ROOT, CHECKPOINTED[name])
                cache[name] = (cfg, write_checkpoint(cfg, build_cfg, image, os.path.join(folder, f'{name}.pth')))
        return cache[name]
    return get


def _expected_files(cfg):
    from mmdeploy.utils.config import get_backend, get_ir_config, get_partition_config

    model_file = get_ir_config(cfg).get('save_file', 'end2end.onnx')
    native = {'torchscript': '.pt', 'aot_inductor': '.pt2'}.get(get_backend(cfg))  # no ONNX: the engine's file
    model_file = os.path.splitext(model_file)[0] + native if native else model_file
    files = {model_file, 'deploy.json', 'pipeline.json', 'detail.json',
             'output_pytorch.png', f'output_{get_backend(cfg)}.png'}
    partition = get_partition_config(cfg)
    if partition:
        from mmdeploy.plugins import get_registry

        parts = partition.get('partition_cfg') or get_registry().partitions[
            (cfg['codebase_config']['type'], partition['type'])].value
        files |= {part['save_file'] for part in parts}
    return files


@pytest.mark.parametrize('rel', CASES)
def test_deploy_shipped_config(rel, models, image_file, tmp_path, capsys):
    from mmdeploy.apis.verify import declared_dynamic_axes
    from mmdeploy.utils.config import get_ir_config

    name = _model_for(rel)
    assert name, f'no model for {rel}: add a rule to MODEL_RULES'
    model_cfg, checkpoint = models(name)
    cfg = _load(rel)
    work_dir = tmp_path / 'work'
    argv = ['deploy', os.path.join(CONFIG_ROOT, rel), model_cfg, '--img', image_file, '--work-dir', str(work_dir)]
    if checkpoint:
        argv += ['--checkpoint', checkpoint]
    if not rel.endswith('.py'):
        argv.append('--safe')
    rc = main(argv)
    out, err = capsys.readouterr()
    assert rc == 0, err[-3000:]
    assert 'Deployed and verified against PyTorch' in out, out
    assert 'FAILED' not in out
    written = set(os.listdir(work_dir))  # codebases may add SDK files (mmocr: dict_file.txt)
    assert _expected_files(cfg) <= written, sorted(written)
    assert not [name for name in written if name.startswith('.mmdeploy-')]
    if name == 'tiny_classifier':
        assert 'scores: ok' in out
    elif name not in DETECTORS:
        assert ': ok' in out, out
    else:
        assert 'detections matched' in out and '0 detections on both sides' not in out, out
        if name == 'mask_rcnn':
            assert 'masks: ok' in out
    if declared_dynamic_axes(get_ir_config(cfg)):
        assert 'second shape (batch 2' in out, out
    else:
        assert 'second shape' not in out
