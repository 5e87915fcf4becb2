"""The suite's disk hygiene (tests/conftest.py, pytest.ini): folders go when their test or fixture ends.

A run that kept every exported model until the session ended filled a CI machine's disk (about 15 GB);
these tests run a small suite with this suite's conftest.py and pytest.ini in a child pytest.
"""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

SUITE = '''\
import os
import pytest

LOG = os.environ['LOG']


def note(*words):
    with open(LOG, 'a') as f:
        f.write(' '.join(str(w) for w in words) + '\\n')


@pytest.fixture(scope='module')
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp('models')
    (folder / 'end2end.onnx').write_bytes(b'x' * 1000)
    note('made', folder)
    yield folder
    note('teardown sees', folder, folder.is_dir())


def test_uses_models(models, tmp_path):
    (tmp_path / 'out.bin').write_bytes(b'y')
    note('test dir', tmp_path)
    assert models.is_dir()


def test_fails_or_passes(models):
    assert os.environ['FAIL'] == '0'
'''


def _run(tmp_path, fail):
    suite = tmp_path / 'suite'
    suite.mkdir()
    for name, source in (('pytest.ini', os.path.join(HERE, '..', 'pytest.ini')),
                         ('conftest.py', os.path.join(HERE, 'conftest.py'))):
        with open(source) as f:
            (suite / name).write_text(f.read())
    (suite / 'test_toy.py').write_text(SUITE)
    log = tmp_path / 'log.txt'
    env = dict(os.environ, LOG=str(log), FAIL=str(int(fail)))
    done = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
                           f'--basetemp={tmp_path / "base"}', str(suite)],
                          cwd=suite, env=env, capture_output=True, text=True, timeout=120)
    lines = [line.split(' ') for line in log.read_text().splitlines()]
    made = next(words[1] for words in lines if words[0] == 'made')
    test_dir = next(words[2] for words in lines if words[:2] == ['test', 'dir'])
    seen_in_teardown = next(words[3] for words in lines if words[:2] == ['teardown', 'sees'])
    return done, made, test_dir, seen_in_teardown


def test_a_passing_run_removes_fixture_and_test_folders(tmp_path):
    done, made, test_dir, seen_in_teardown = _run(tmp_path, fail=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert seen_in_teardown == 'True', 'removed before the fixture\'s own teardown ran'
    assert not os.path.exists(made)
    assert not os.path.exists(test_dir)


def test_a_failure_keeps_the_fixture_folder_and_the_failing_test_s(tmp_path):
    done, made, test_dir, _ = _run(tmp_path, fail=True)
    assert done.returncode == 1, done.stdout + done.stderr
    assert os.path.isfile(os.path.join(made, 'end2end.onnx')), 'the fixture\'s folder went despite a failure'
    assert not os.path.exists(test_dir), 'the passing test\'s folder was kept'
