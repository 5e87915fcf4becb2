"""Settings for the whole test suite.

This project's own tests run with strict rewrites: a rewrite whose target no
longer exists in the installed codebase is an error (RewriteError), not the
warning users get, so an upstream rename fails CI instead of silently
changing a graph. Tests of the lenient default clear the variable themselves.
"""
import faulthandler
import os

import pytest

_CRASH_FD = pytest.StashKey[int]()

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
