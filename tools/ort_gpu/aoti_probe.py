"""Can this machine load an AOTInductor package at all? A four-layer conv net, no mmdeploy involved.

Compiles the net with ``torch._inductor.aoti_compile_and_package`` on CUDA in float16 and loads the package
with ``aoti_load_package``, in this process or in a fresh child process. On the lent H200 of 2026-12-03
(torch 2.11.0+cu130) every combination died in ``AOTIModelPackageLoader`` with a segmentation fault, with
and without mmdeploy's environment (``device_steps.sh env``); on the same kind of machine on 2026-12-02
the same torch loaded mmdeploy's packages. Run it first when AOTInductor sides crash (rc 139). The cause
(2026-12-03, ``diagnose``): the machine sets ``CXX=/opt/gcc/bin/g++``, which Inductor builds the package's
library with; with ``CXX=/usr/bin/g++`` (``device_steps.sh env`` exports it) packages load and run.

``diagnose`` compiles once and tries each way of running in its own child process (a crash ends only that
child): the package loader as is, with ``TMPDIR`` under ``$HOME`` (the loader unpacks the package into a
temporary folder), the package's shared library loaded straight with ``AOTIModelContainerRunnerCuda``
(unzipped here, no package loader), and torch.compile (Triton's kernels without AOTInductor); then the
machine facts a crash may hang on. Under gdb (when present) a crashing child's native stack is printed.

Usage: python3 tools/ort_gpu/aoti_probe.py FREEZING(0|1) LOAD_HERE(0|1)
       python3 tools/ort_gpu/aoti_probe.py diagnose
"""
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

import torch


def compile_probe(freezing: bool, folder: str) -> str:
    """Compile the four-layer net (float16, CUDA) into ``folder/probe.pt2``; its path."""
    x = torch.randn(4, 3, 64, 64, device='cuda', dtype=torch.half)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3), torch.nn.BatchNorm2d(16), torch.nn.ReLU(),
                              torch.nn.Conv2d(16, 8, 3)).cuda().half().eval()
    path = os.path.join(folder, 'probe.pt2')
    with torch.no_grad():
        program = torch.export.export(net, (x,))
        torch._inductor.aoti_compile_and_package(program, package_path=path, inductor_configs={'freezing': freezing})
    print(f'compiled (freezing={freezing})', flush=True)
    return path


def load_and_run(how: str, path: str) -> None:
    """One way of running (in a child): 'package' (aoti_load_package), 'runner' (the .so, unzipped), or
    'compile' (torch.compile in this process: Triton's kernels loaded without AOTInductor)."""
    x = torch.randn(4, 3, 64, 64, device='cuda', dtype=torch.half)
    if how == 'compile':
        out = torch.compile(lambda t: torch.relu(t * 2 + 1).sum(dim=1))(x)
    elif how == 'package':
        out = torch._inductor.aoti_load_package(path)(x)
    else:
        folder = tempfile.mkdtemp(dir=os.path.dirname(path))
        zipfile.ZipFile(path).extractall(folder)
        libraries = glob.glob(os.path.join(folder, '**', '*.so'), recursive=True)
        print('shared libraries in the package:', [os.path.relpath(p, folder) for p in libraries], flush=True)
        runner = torch._C._aoti.AOTIModelContainerRunnerCuda(libraries[0], 1, 'cuda',
                                                              os.path.dirname(libraries[0]))
        out = runner.run([x])[0]
    torch.cuda.synchronize()
    print(f'{how}: loaded and ran, output {tuple(out.shape)}', flush=True)


def child(args, env=None) -> int:
    command = [sys.executable, '-X', 'faulthandler', __file__] + args
    if shutil.which('gdb'):
        command = ['gdb', '-q', '-batch', '-ex', 'run', '-ex', 'bt 25', '--args'] + command
    return subprocess.run(command, env=env).returncode


def diagnose() -> int:
    folder = tempfile.mkdtemp(dir=os.path.expanduser('~'))
    path = compile_probe(True, folder)
    tmp = os.path.join(folder, 'tmp')
    os.makedirs(tmp)
    results = {}
    for label, how, env in (('package loader', 'package', None),
                            ('package loader, TMPDIR under $HOME', 'package', dict(os.environ, TMPDIR=tmp)),
                            ('shared library, AOTIModelContainerRunnerCuda', 'runner', None),
                            ('torch.compile (Triton, no AOTInductor)', 'compile', None)):
        print(f'== {label}', flush=True)
        results[label] = child(['load', how, path], env)
    print('== machine')
    print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0), flush=True)
    for command in (['nvidia-smi', '--query-gpu=driver_version', '--format=csv,noheader'],
                    ['sh', '-c', 'findmnt -no TARGET,OPTIONS --target /tmp; findmnt -no TARGET,OPTIONS --target '
                                 '"$HOME"; ulimit -s; echo TMPDIR=$TMPDIR']):
        subprocess.run(command)
    for label, rc in results.items():
        print(f'{label}: rc {rc} ({"ok" if rc == 0 else "FAILED"})')
    return 0 if any(rc == 0 for rc in results.values()) else 1


def main() -> int:
    if sys.argv[1] == 'diagnose':
        return diagnose()
    if sys.argv[1] == 'load':
        load_and_run(sys.argv[2], sys.argv[3])
        return 0
    freezing, here = int(sys.argv[1]), int(sys.argv[2])
    if len(sys.argv) > 3:  # the child: load only
        load_and_run('package', sys.argv[3])
        return 0
    path = compile_probe(bool(freezing), tempfile.mkdtemp())
    if here:
        load_and_run('package', path)
        return 0
    return subprocess.run([sys.executable, __file__, '0', '0', path]).returncode


if __name__ == '__main__':
    sys.exit(main())
