"""Can this machine load an AOTInductor package at all? A four-layer conv net, no mmdeploy involved.

Compiles the net with ``torch._inductor.aoti_compile_and_package`` on CUDA in float16 and loads the package
with ``aoti_load_package``, in this process or in a fresh child process. On the lent H200 of 2026-12-03
(torch 2.11.0+cu130) every combination died in ``AOTIModelPackageLoader`` with a segmentation fault, with
and without mmdeploy's environment (``device_steps.sh env``); on the same kind of machine on 2026-12-02
the same torch loaded mmdeploy's packages. Run it first when AOTInductor sides crash (rc 139).

Usage: python3 tools/ort_gpu/aoti_probe.py FREEZING(0|1) LOAD_HERE(0|1)
"""
import os
import subprocess
import sys
import tempfile

import torch


def main() -> int:
    freezing, here = int(sys.argv[1]), int(sys.argv[2])
    x = torch.randn(4, 3, 64, 64, device='cuda', dtype=torch.half)
    if len(sys.argv) > 3:  # the child: load only
        runner = torch._inductor.aoti_load_package(sys.argv[3])
        print('loaded in a child process, output', tuple(runner(x).shape))
        return 0
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3), torch.nn.BatchNorm2d(16), torch.nn.ReLU(),
                              torch.nn.Conv2d(16, 8, 3)).cuda().half().eval()
    with torch.no_grad():
        program = torch.export.export(net, (x,))
        path = os.path.join(tempfile.mkdtemp(), 'probe.pt2')
        torch._inductor.aoti_compile_and_package(program, package_path=path,
                                                 inductor_configs={'freezing': bool(freezing)})
    print(f'compiled (freezing={bool(freezing)})', flush=True)
    if here:
        runner = torch._inductor.aoti_load_package(path)
        print('loaded in this process, output', tuple(runner(x).shape))
        return 0
    return subprocess.run([sys.executable, __file__, '0', '0', path]).returncode


if __name__ == '__main__':
    sys.exit(main())
