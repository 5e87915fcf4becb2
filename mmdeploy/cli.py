"""The ``mmdeploy`` command line: ``deploy`` a model, list ``plugins``."""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Any, List, Optional


def _deploy(args: argparse.Namespace) -> int:
    from mmdeploy.apis.deploy import DeployResult, deploy, verification_lines
    from mmdeploy.apis.verify import VerificationError

    def report(result: DeployResult) -> None:
        for verification in result.verifications:
            print(f'{verification.label}:')
            for line in verification_lines(verification, result.backend):
                print(f'  {line}')

    try:
        result = deploy(args.deploy_cfg, args.model_cfg, args.img, args.work_dir,
                        model_checkpoint=args.checkpoint_opt or args.checkpoint, device=args.device,
                        test_img=args.test_img, show_progress=not args.quiet, safe=args.safe,
                        verify=not args.no_verify, exporter=args.exporter)
    except VerificationError as exc:
        result = getattr(exc, 'result', None)
        if result is not None:
            report(result)
            print(f'Wrote to {args.work_dir} for inspection: {", ".join(sorted(result.files))}')
        print(f'error: {_one_line(exc)}', file=sys.stderr)
        return EXIT_VERIFICATION_FAILED
    report(result)
    files = ', '.join(sorted(result.files))
    if result.verified:
        print(f'Deployed and verified against PyTorch; wrote to {args.work_dir}: {files}')
    else:
        print(f'Wrote to {args.work_dir}: {files} (NOT verified: --no-verify given, the outputs were not '
              f'compared with PyTorch)')
    return 0


def _plugins(args: argparse.Namespace) -> int:
    from mmdeploy.plugins import load_all

    registry = load_all()  # every hook, so a plugin broken in its rewrites shows FAILED too
    print('plugins:')
    for info in registry.plugins.values():
        state = f'FAILED ({info.error})' if info.error else 'ok'
        print(f'  {info.name} [{info.source}] {state}; hooks: {", ".join(info.hooks) or "-"}')
    print('backends:')
    for entry in registry.backends.values():
        print(f'  {entry.name} (from {entry.plugin}): {_backend_state(entry)}')
    print('codebases:')
    for entry in registry.codebases.values():
        state = 'available' if entry.available else f'unavailable: missing {", ".join(entry.missing)}'
        print(f'  {entry.name} (from {entry.plugin}): {state}; tasks: {", ".join(entry.value)}')
    return 0


def _backend_state(entry: Any) -> str:
    """``available, <package> <version>`` of an engine, or ``unavailable: <why>``.

    The packages are the distributions of the modules the backend registered
    as ``requires``; each module is imported, so an installed engine that
    cannot load (a missing shared library, ...) shows why.
    """
    import importlib
    from importlib.metadata import PackageNotFoundError, packages_distributions, version

    if not entry.available:
        return f'unavailable: missing {", ".join(entry.missing)} (pip install {" ".join(entry.missing)})'
    dists = packages_distributions()
    found = []
    for module in entry.requires:
        try:
            importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 whatever breaks the engine's import is the reason shown
            return f'unavailable: import {module} failed ({type(exc).__name__}: {_one_line(exc)[:200]})'
        for dist in dists.get(module.split('.')[0], []) or [module]:
            try:
                found.append(f'{dist} {version(dist)}')
            except PackageNotFoundError:
                module_version = getattr(sys.modules.get(module), '__version__', None)
                found.append(f'{module} {module_version or "(version unknown)"}')
    return ', '.join(['available'] + sorted(set(found)))


LOG_LEVELS = ('CRITICAL', 'ERROR', 'WARNING', 'INFO', 'DEBUG')
#: exit status of ``deploy`` when the backend's outputs differ from PyTorch's (files kept)
EXIT_VERIFICATION_FAILED = 3


def _log_level_options(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument('--log-level', type=str.upper, choices=LOG_LEVELS, default=default,
                        metavar='{' + ','.join(LOG_LEVELS) + '}',
                        help='logging level, case-insensitive (default WARNING); '
                             'before or after the sub-command')


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for docs and tests)."""
    from mmdeploy.version import __version__

    parser = argparse.ArgumentParser(prog='mmdeploy', description='Deploy OpenMMLab models to inference engines.')
    parser.add_argument('--version', action='version', version=f'mmdeploy {__version__}')
    _log_level_options(parser, 'WARNING')
    # after the sub-command too; SUPPRESS keeps a value given before it
    common = argparse.ArgumentParser(add_help=False)
    _log_level_options(common, argparse.SUPPRESS)
    sub = parser.add_subparsers(dest='command', required=True)
    dep = sub.add_parser('deploy', parents=[common], help='convert a model and verify it against PyTorch')
    dep.add_argument('deploy_cfg', help='deploy config (.py; .json/.yaml with --safe)')
    dep.add_argument('model_cfg', help='model config path, or pkg::path for one a package ships '
                     '(e.g. mmpretrain::resnet/resnet18_8xb32_in1k.py)')
    dep.add_argument('checkpoint', nargs='?', default=None, help='checkpoint (optional: random weights)')
    dep.add_argument('--checkpoint', dest='checkpoint_opt', metavar='CHECKPOINT', default=None,
                     help='checkpoint (same as positional)')
    dep.add_argument('--img', required=True, help='image used to trace the model')
    dep.add_argument('--test-img', default=None, help='image for comparison and pictures (default: --img)')
    dep.add_argument('--work-dir', required=True, help='output folder')
    dep.add_argument('--device', default='cpu', help="'cpu' or 'cuda[:id]'")
    dep.add_argument('--exporter', choices=('dynamo', 'torchscript'), default=None,
                     help="torch's ONNX exporter; overrides onnx_config.exporter")
    dep.add_argument('--no-verify', action='store_true',
                     help='do not compare the outputs with PyTorch (the default fails the deploy with '
                          f'exit status {EXIT_VERIFICATION_FAILED} when they differ beyond tolerance)')
    dep.add_argument('--safe', action='store_true', help='accept only JSON/YAML deploy configs (never run code)')
    dep.add_argument('--quiet', action='store_true', help='no progress lines')
    dep.set_defaults(func=_deploy)
    plg = sub.add_parser('plugins', parents=[common], help='list plugins, backends and codebases')
    plg.set_defaults(func=_plugins)
    return parser


def _one_line(exc: BaseException) -> str:
    text = ' '.join(part.strip() for part in str(exc).splitlines() if part.strip())
    return text or type(exc).__name__


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point; returns the exit status (0 ok, 1 user error, 3 verification failed, 130 interrupted).

    A user error (any :class:`~mmdeploy.errors.MMDeployError`) prints one
    ``error: ...`` line that names the fix, without a traceback
    (``--log-level DEBUG`` adds it). Ctrl-C prints one line and exits 130;
    ``deploy`` leaves the work dir as it was.
    """
    args = None
    try:
        from mmdeploy.errors import MMDeployError

        args = build_parser().parse_args(argv)
        logging.basicConfig(level=getattr(logging, args.log_level),
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
