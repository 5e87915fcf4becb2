"""What a user can get wrong with the SDK gives one clear error each (an MMDeployError subclass)."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from mmdeploy.errors import MMDeployError
from mmdeploy.sdk.errors import SDKClosedError, SDKInputError, SDKModelDirError, SDKPipelineError


def _copy(folder, dest, skip=(), edit=None, edit_detail=None):
    """``folder`` copied to ``dest`` (model files linked), without ``skip``; ``edit(pipeline)`` changes
    pipeline.json, ``edit_detail(detail)`` detail.json."""
    os.makedirs(dest)
    for name in os.listdir(folder):
        if name in skip:
            continue
        src, dst = os.path.join(folder, name), os.path.join(dest, name)
        if name.endswith('.json'):
            with open(src) as f:
                doc = json.load(f)
            if name == 'pipeline.json' and edit is not None:
                edit(doc)
            if name == 'detail.json' and edit_detail is not None:
                edit_detail(doc)
            with open(dst, 'w') as f:
                json.dump(doc, f)
        else:
            os.symlink(src, dst)
    return str(dest)


@pytest.mark.parametrize('missing', ['end2end.onnx', 'pipeline.json', 'deploy.json'])
def test_missing_file(cls_folder, tmp_path, missing):
    from mmdeploy.sdk import Classifier

    folder = _copy(cls_folder['dir'], tmp_path / 'copy', skip=(missing,))
    with pytest.raises(SDKModelDirError, match=rf'{missing} is missing'):
        Classifier(folder)


def test_missing_folder(tmp_path):
    from mmdeploy.sdk import Classifier

    with pytest.raises(SDKModelDirError, match='not found'):
        Classifier(str(tmp_path / 'nowhere'))


def test_unknown_transform(cls_folder, tmp_path):
    from mmdeploy.sdk import Classifier

    def edit(doc):
        doc['pipeline']['tasks'][0]['transforms'].insert(1, {'type': 'FancyResize', 'scale': 3})

    folder = _copy(cls_folder['dir'], tmp_path / 'copy', edit=edit)
    with pytest.raises(SDKPipelineError, match='FancyResize') as info:
        Classifier(folder)
    assert 'Resize' in str(info.value).replace('FancyResize', '')  # names the known ones


def test_unknown_postprocess_and_wrong_task(cls_folder, tmp_path):
    from mmdeploy.sdk import Classifier, Detector

    def edit(doc):
        doc['pipeline']['tasks'][2]['component'] = 'NoSuchHead'

    with pytest.raises(SDKPipelineError, match="unknown SDK postprocess 'NoSuchHead'"):
        Classifier(_copy(cls_folder['dir'], tmp_path / 'copy', edit=edit))
    with pytest.raises(SDKPipelineError, match='holds a Classifier model'):
        Detector(cls_folder['dir'])


def test_partitioned_folder_refused(det_folder, tmp_path):
    # deploy.json of a partitioned deploy names only the first sub-model: running it alone would be wrong
    from mmdeploy.sdk import Detector

    def edit(detail):
        detail['partition_config'] = {'type': 'single_stage', 'apply_marks': True, 'partition_cfg': []}

    with pytest.raises(SDKPipelineError, match="cut into sub-models .*'single_stage'.* end-to-end config"):
        Detector(_copy(det_folder['dir'], tmp_path / 'copy', edit_detail=edit))


@pytest.fixture(scope='module')
def classifier(cls_folder):
    from mmdeploy.sdk import Classifier

    with Classifier(cls_folder['dir']) as handle:
        yield handle


@pytest.mark.parametrize('image,message', [
    (np.zeros((40, 50, 3), np.float32), 'uint8'),
    (np.zeros((40, 50, 4), np.uint8), 'HxWx3'),
    (np.zeros((40, 50), np.uint8), 'HxWx3'),
    ('image.png', 'numpy array'),
], ids=['float32', '4-channels', 'grayscale', 'path'])
def test_wrong_image(classifier, image, message):
    with pytest.raises(SDKInputError, match=message):
        classifier(image)
    with pytest.raises(SDKInputError, match=message):
        classifier([np.zeros((40, 50, 3), np.uint8), image])  # a bad image in a list too


def test_closed_handle(cls_folder):
    from mmdeploy.sdk import Classifier

    image = np.zeros((40, 50, 3), np.uint8)
    with Classifier(cls_folder['dir']) as handle:
        handle(image)
    assert handle.closed
    with pytest.raises(SDKClosedError, match='was closed; create a new one'):
        handle(image)
    handle.close()  # twice is fine
    assert issubclass(SDKClosedError, MMDeployError)


def test_cli_prints_one_error_line(tmp_path, capsys, sdk_images):
    from mmdeploy.cli import main

    assert main(['run', str(tmp_path / 'nowhere'), sdk_images[0][0]]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('error: model folder') and 'mmdeploy deploy' in err[0]
