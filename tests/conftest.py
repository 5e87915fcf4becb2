"""Settings for the whole test suite.

This project's own tests run with strict rewrites: a rewrite whose target no
longer exists in the installed codebase is an error (RewriteError), not the
warning users get, so an upstream rename fails CI instead of silently
changing a graph. Tests of the lenient default clear the variable themselves.

Disk: exported detectors with random weights take 100-400 MB each, and the
suite makes hundreds of them. pytest.ini removes a passing test's tmp_path at
once; the folders that module- and session-scoped fixtures make with
tmp_path_factory are removed here when the fixture is torn down. Both are kept
where a test failed, for a look afterwards.
"""
import faulthandler
import os
import shutil

import pytest

_CRASH_FD = pytest.StashKey[int]()
_FIXTURE_DIRS: dict = {}  # FixtureDef -> (its folders, session.testsfailed when it was set up)

os.environ.setdefault('MMDEPLOY_STRICT_REWRITES', '1')


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    """A crash (segfault) in the suite prints every thread's Python stack on stdout, beside pytest's progress.

    pytest's own crash report goes to stderr, which a CI log may show apart from the progress or not at all;
    fd 1 is duplicated here, before output capturing points it at its temporary file for each test.
    """
    config.stash[_CRASH_FD] = os.dup(1)
    faulthandler.enable(file=config.stash[_CRASH_FD], all_threads=True)


def pytest_unconfigure(config):
    fd = config.stash.get(_CRASH_FD, None)
    if fd is not None:
        faulthandler.disable()
        os.close(fd)


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef, request):
    """Remove the folders a fixture made with tmp_path_factory when that fixture is torn down.

    A passing run would otherwise hold every module's exported models until the session ends
    (about 15 GB), which filled a CI machine's disk. Folders are kept if a test failed while the
    fixture was alive. Folders made by a fixture that this one requested as it ran belong to that
    one (they are claimed first, as its setup ends first).
    """
    factory = request.config._tmp_path_factory
    if fixturedef.func.__module__.startswith('_pytest'):
        return (yield)
    root = factory.getbasetemp()
    before = set(os.listdir(root))
    try:
        return (yield)
    finally:
        claimed = set().union(*(folders for folders, _ in _FIXTURE_DIRS.values()))
        made = {root / name for name in set(os.listdir(root)) - before} - claimed
        if made:
            _FIXTURE_DIRS[fixturedef] = (made, request.session.testsfailed)


def pytest_fixture_post_finalizer(fixturedef, request):
    """Runs after the fixture's own teardown code, which may still use its folders."""
    folders, failed_at_setup = _FIXTURE_DIRS.pop(fixturedef, (set(), 0))
    if request.session.testsfailed > failed_at_setup:
        return
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
