"""Install mmdeploy: ``pip install -e .`` (see README for the full environment).

Besides the Python package this builds the C++ custom ops of ``csrc/ops`` (see
csrc/ops/README.md): ``mmdeploy/lib/libmmdeploy_onnxruntime_ops.so``, the ONNX
Runtime custom-op library. It needs ONNX Runtime's C/C++ API headers, which the
onnxruntime wheel does not ship: they are taken from ``ORT_INCLUDE_DIR``, else
``.cache/onnxruntime-headers``, else fetched there from Debian's
``libonnxruntime-dev`` (csrc/ops/onnxruntime/fetch_headers.py). When neither
works the library is skipped with a warning (mmdeploy installs; models that
need the ops are then refused by the ONNX Runtime plugin, saying why).
``MMDEPLOY_BUILD_OPS=0`` skips it on purpose.
"""
import os
import sys
from pathlib import Path

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

here = Path(__file__).parent
version = {}
exec((here / 'mmdeploy' / 'version.py').read_text(), version)

#: the ONNX Runtime custom-op library: a plain shared library (no Python module), loaded by ORT
ORT_OPS = 'mmdeploy.lib.libmmdeploy_onnxruntime_ops'
OPS_SOURCES = ['csrc/ops/common/deform_conv.cpp', 'csrc/ops/common/ms_deform_attn.cpp']


def requirements(name):
    lines = (here / 'requirements' / name).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith('#')]


def _ort_include_dir():
    """A folder holding onnxruntime_c_api.h (fetched when none is found), or None with a warning."""
    cached = here / '.cache' / 'onnxruntime-headers'
    for candidate in (os.environ.get('ORT_INCLUDE_DIR'), cached, '/usr/include/onnxruntime'):
        if candidate and (Path(candidate) / 'onnxruntime_c_api.h').is_file():
            return str(candidate)
    sys.path.insert(0, str(here / 'csrc' / 'ops' / 'onnxruntime'))
    try:
        from fetch_headers import fetch

        print('[mmdeploy] fetching ONNX Runtime headers (Debian libonnxruntime-dev)', file=sys.stderr)
        return fetch(str(cached))
    except Exception as exc:  # the library is optional: install the Python package anyway
        print(f'[mmdeploy] WARNING: ONNX Runtime custom ops not built: no headers ({exc}); set '
              f'ORT_INCLUDE_DIR to a folder with onnxruntime_c_api.h and reinstall', file=sys.stderr)
        return None
    finally:
        sys.path.pop(0)


class BuildOps(build_ext):
    """build_ext that names the custom-op library ``lib*.so`` (not a Python module's name)."""

    def get_ext_filename(self, fullname):
        # called with the dotted name, and with only its last part when building outside the tree
        if fullname.split('.')[-1] == ORT_OPS.split('.')[-1]:
            return os.path.join(*fullname.split('.')) + ('.dll' if os.name == 'nt' else '.so')
        return super().get_ext_filename(fullname)

    def copy_extensions_to_source(self):
        # editable installs copy the library into the source tree: mmdeploy/lib/ may not exist yet
        (here / 'mmdeploy' / 'lib').mkdir(exist_ok=True)
        super().copy_extensions_to_source()


def ext_modules():
    if os.environ.get('MMDEPLOY_BUILD_OPS', '1') == '0':
        return []
    include = _ort_include_dir()
    if include is None:
        return []
    return [Extension(ORT_OPS, OPS_SOURCES + ['csrc/ops/onnxruntime/ort_ops.cpp'], include_dirs=[include],
                      language='c++', extra_compile_args=['-O3', '-std=c++17', '-fvisibility=hidden'])]


setup(
    name='mmdeploy',
    version=version['__version__'],
    description='Deploy OpenMMLab models to inference engines',
    long_description=(here / 'README.md').read_text() if (here / 'README.md').exists() else '',
    long_description_content_type='text/markdown',
    python_requires='>=3.10',
    packages=find_packages(include=['mmdeploy', 'mmdeploy.*']),
    # everything the default path imports (tests/config/test_install_requires.py checks it)
    install_requires=requirements('runtime.txt'),
    extras_require={'all': requirements('codebases.txt'),
                    'tests': requirements('tests.txt')},
    entry_points={'console_scripts': ['mmdeploy = mmdeploy.cli:main']},
    ext_modules=ext_modules(),
    cmdclass={'build_ext': BuildOps},
)
