"""The ``mmdeploy`` command line: ``deploy`` a model, list ``plugins``."""
from __future__ import annotations

import argparse
import logging
import sys
from typing import List, Optional


def _deploy(args: argparse.Namespace) -> int:
    from mmdeploy.apis.deploy import deploy

    result = deploy(args.deploy_cfg, args.model_cfg, args.img, args.work_dir,
                    model_checkpoint=args.checkpoint_opt or args.checkpoint, device=args.device,
                    test_img=args.test_img, show_progress=not args.quiet, safe=args.safe)
    print(f'Wrote to {args.work_dir}: {", ".join(sorted(result.files))}')
    for name in result.max_abs_diff:
        print(f'{name}: max abs diff {result.max_abs_diff[name]:.3g}, '
              f'max rel diff {result.max_rel_diff[name]:.3g}, mean abs diff {result.mean_abs_diff[name]:.3g}')
    return 0


def _plugins(args: argparse.Namespace) -> int:
    from mmdeploy.plugins import get_registry

    registry = get_registry()
    print('plugins:')
    for info in registry.plugins.values():
        state = f'FAILED ({info.error})' if info.error else 'ok'
        print(f'  {info.name} [{info.source}] {state}; hooks: {", ".join(info.hooks) or "-"}')
    print('backends:')
    for entry in registry.backends.values():
        state = 'available' if entry.available else f'unavailable: missing {", ".join(entry.missing)}'
        print(f'  {entry.name} (from {entry.plugin}): {state}')
    print('codebases:')
    for entry in registry.codebases.values():
        state = 'available' if entry.available else f'unavailable: missing {", ".join(entry.missing)}'
        print(f'  {entry.name} (from {entry.plugin}): {state}; tasks: {", ".join(entry.value)}')
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for docs and tests)."""
    parser = argparse.ArgumentParser(prog='mmdeploy', description='Deploy OpenMMLab models to inference engines.')
    parser.add_argument('--log-level', default='WARNING', help='logging level (default WARNING)')
    sub = parser.add_subparsers(dest='command', required=True)
    dep = sub.add_parser('deploy', help='convert a model and check it against PyTorch')
    dep.add_argument('deploy_cfg', help='deploy config (.py; .json/.yaml with --safe)')
    dep.add_argument('model_cfg', help='model config path, or pkg::path for one a package ships '
                     '(e.g. mmpretrain::resnet/resnet18_8xb32_in1k.py)')
    dep.add_argument('checkpoint', nargs='?', default=None, help='checkpoint (optional: random weights)')
    dep.add_argument('--checkpoint', dest='checkpoint_opt', default=None, help='checkpoint (same as positional)')
    dep.add_argument('--img', required=True, help='image used to trace the model')
    dep.add_argument('--test-img', default=None, help='image for comparison and pictures (default: --img)')
    dep.add_argument('--work-dir', required=True, help='output folder')
    dep.add_argument('--device', default='cpu', help="'cpu' or 'cuda[:id]'")
    dep.add_argument('--safe', action='store_true', help='accept only JSON/YAML deploy configs (never run code)')
    dep.add_argument('--quiet', action='store_true', help='no progress lines')
    dep.set_defaults(func=_deploy)
    plg = sub.add_parser('plugins', help='list plugins, backends and codebases')
    plg.set_defaults(func=_plugins)
    return parser


def _one_line(exc: BaseException) -> str:
    text = ' '.join(part.strip() for part in str(exc).splitlines() if part.strip())
    return text or type(exc).__name__


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point; returns the exit status (0 ok, 1 user error, 130 interrupted).

    A user error (any :class:`~mmdeploy.errors.MMDeployError`) prints one
    ``error: ...`` line that names the fix, without a traceback
    (``--log-level DEBUG`` adds it). Ctrl-C prints one line and exits 130;
    ``deploy`` leaves the work dir as it was.
    """
    args = None
    try:
        from mmdeploy.errors import MMDeployError

        args = build_parser().parse_args(argv)
        logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
                            format='%(levelname)s %(name)s: %(message)s')
        try:
            return args.func(args)
        except MMDeployError as exc:
            logging.getLogger('mmdeploy').debug('traceback of the error below', exc_info=True)
            print(f'error: {_one_line(exc)}', file=sys.stderr)
            return 1
    except KeyboardInterrupt:
        command = getattr(args, 'command', None)
        note = ': nothing was written to the work dir' if command == 'deploy' else ''
        print(f'interrupted{note}', file=sys.stderr)
        return 130


if __name__ == '__main__':
    sys.exit(main())
