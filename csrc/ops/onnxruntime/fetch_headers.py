"""Fetch ONNX Runtime's C/C++ API headers for building the custom-op library (stdlib only).

The onnxruntime wheel on PyPI ships no headers and Debian bookworm packages no
ONNX Runtime, but Debian trixie's ``libonnxruntime-dev`` (1.21, MIT licensed)
holds ``onnxruntime_c_api.h`` and the header-only C++ wrapper. A custom-op
library built against API version N loads into any runtime whose version is
>= N (ORT keeps older API tables), so 1.21's headers serve the pinned 1.32.

The package is fetched with apt-get into a private apt state (its own sources
list, lists and cache under a temporary folder: the machine's apt setup is not
touched), unpacked with dpkg-deb, and ``usr/include/onnxruntime`` is copied to
the destination with the package's copyright file. Run as
``python csrc/ops/onnxruntime/fetch_headers.py DEST``; ``setup.py`` calls
:func:`fetch` when no headers are found (see csrc/ops/README.md).
"""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile

PACKAGE = 'libonnxruntime-dev'
SUITE = 'trixie'
MIRROR = 'http://deb.debian.org/debian'
KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg'


def _apt_options(root: str) -> list:
    return ['-o', f'Dir::Etc::SourceList={root}/sources.list', '-o', 'Dir::Etc::SourceParts=/dev/null',
            '-o', f'Dir::State::Lists={root}/lists', '-o', f'Dir::Cache={root}/cache',
            '-o', 'APT::Sandbox::User=root', '-q']


def fetch(dest: str) -> str:
    """Put ``onnxruntime_c_api.h`` (and its siblings) into ``dest``; return ``dest``.

    Raises:
        RuntimeError: apt-get or dpkg-deb is missing or failed (the message
            says which command, with its last output line).
    """
    for tool in ('apt-get', 'dpkg-deb'):
        if shutil.which(tool) is None:
            raise RuntimeError(f'{tool} not found: fetch {PACKAGE} by hand and set ORT_INCLUDE_DIR')
    with tempfile.TemporaryDirectory(prefix='ort-headers-') as root:
        for sub in ('lists/partial', 'cache/archives/partial'):
            os.makedirs(os.path.join(root, sub))
        signed = f'[signed-by={KEYRING}] ' if os.path.exists(KEYRING) else ''
        with open(os.path.join(root, 'sources.list'), 'w') as f:
            f.write(f'deb {signed}{MIRROR} {SUITE} main\n')
        options = _apt_options(root)
        for command in (['apt-get', *options, 'update'], ['apt-get', *options, 'download', PACKAGE]):
            done = subprocess.run(command, cwd=root, capture_output=True, text=True)
            if done.returncode != 0:
                last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ['no output']
                raise RuntimeError(f'{" ".join(command[:1] + command[-2:])} failed: {last[0]}')
        debs = glob.glob(os.path.join(root, f'{PACKAGE}_*.deb'))
        if not debs:
            raise RuntimeError(f'apt-get download {PACKAGE} wrote no .deb')
        unpacked = os.path.join(root, 'unpacked')
        subprocess.run(['dpkg-deb', '-x', debs[0], unpacked], check=True)
        include = os.path.join(unpacked, 'usr', 'include', 'onnxruntime')
        staging = dest + '.partial'
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(include, staging)
        copyright_file = os.path.join(unpacked, 'usr', 'share', 'doc', PACKAGE, 'copyright')
        if os.path.exists(copyright_file):
            shutil.copy(copyright_file, os.path.join(staging, 'COPYRIGHT.debian'))
        with open(os.path.join(staging, 'SOURCE'), 'w') as f:
            f.write(f'{os.path.basename(debs[0])} from {MIRROR} {SUITE}\n')
        shutil.rmtree(dest, ignore_errors=True)
        os.rename(staging, dest)
    return dest


if __name__ == '__main__':
    if len(sys.argv) != 2:
        sys.exit('usage: fetch_headers.py DEST')
    print(fetch(sys.argv[1]))
