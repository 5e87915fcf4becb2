"""Fixtures of the tools tests: the demo digits classifier, deployed once per session with ``--report``."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DIGITS_CFG = os.path.join(ROOT, 'demo', 'models', 'digits_classifier.py')
DIGITS_CKPT = os.path.join(ROOT, 'demo', 'models', 'digits_classifier.pth')
DEPLOY_CFG = os.path.join(ROOT, 'configs', 'mmpretrain', 'classification_onnxruntime_dynamic.py')


@pytest.fixture(scope='session')
def digits_root(tmp_path_factory):
    """The digits data set: data/demo/digits when generated, else a small one generated for the session."""
    root = os.path.join(ROOT, 'data', 'demo', 'digits')
    if os.path.isdir(os.path.join(root, 'val')):
        return root
    script = os.path.join(ROOT, 'tools', 'demo_data', 'make_datasets.py')
    if not os.path.isfile(script) or not os.path.isfile(DIGITS_CFG):
        pytest.skip('the demo data generator / demo classifier config is not in the tree')
    out = tmp_path_factory.mktemp('demo_data') / 'demo'
    subprocess.run([sys.executable, script, '--out', str(out), '--digits-limit', '1000', '--shapes-train', '2',
                    '--shapes-val', '2'], check=True, cwd=ROOT, capture_output=True)
    return str(out / 'digits')


def checkpoint_or_none():
    """The trained demo checkpoint when it is in the tree (random weights otherwise)."""
    return DIGITS_CKPT if os.path.isfile(DIGITS_CKPT) else None


@pytest.fixture(scope='session')
def digits(digits_root):
    """Paths of the digits demo: ``cfg``, ``checkpoint`` (None when not trained yet), ``deploy_cfg``,
    ``root`` and ``options`` (``--cfg-options`` pointing the test set at ``root``)."""
    return dict(cfg=DIGITS_CFG, checkpoint=checkpoint_or_none(), deploy_cfg=DEPLOY_CFG, root=digits_root,
                options=['--cfg-options', f'test_dataloader.dataset.data_root={digits_root}'])


@pytest.fixture(scope='session')
def digits_deploy(tmp_path_factory, digits_root):
    """``mmdeploy deploy ... --report`` of the digits classifier to ONNX Runtime (dynamo exporter).

    Returns ``(work_dir, exit status, stdout, test image)``.
    """
    import contextlib
    import io

    from mmdeploy.cli import main

    work_dir = str(tmp_path_factory.mktemp('digits_ort'))
    folder = os.path.join(digits_root, 'val', '3')
    image = os.path.join(folder, sorted(os.listdir(folder))[0])
    argv = ['deploy', DEPLOY_CFG, DIGITS_CFG, '--img', image, '--work-dir', work_dir, '--device', 'cpu',
            '--exporter', 'dynamo', '--report', '--quiet']
    if checkpoint_or_none():
        argv += ['--checkpoint', checkpoint_or_none()]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(argv)
    return work_dir, status, out.getvalue(), image
