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
            _write_report(args, result)
        print(f'error: {_one_line(exc)}', file=sys.stderr)
        return EXIT_VERIFICATION_FAILED
    report(result)
    _write_report(args, result)
    files = ', '.join(sorted(result.files))
    if result.verified:
        print(f'Deployed and verified against PyTorch; wrote to {args.work_dir}: {files}')
    else:
        print(f'Wrote to {args.work_dir}: {files} (NOT verified: --no-verify given, the outputs were not '
              f'compared with PyTorch)')
    return 0


def _write_report(args: argparse.Namespace, result: Any) -> None:
    """``deploy --report [PATH]``: the HTML page of the run (with a quick profile)."""
    if getattr(args, 'report', None) is None:
        return
    from mmdeploy.apis.report import write_report

    path = write_report(result, args.work_dir, args.deploy_cfg, args.model_cfg, args.report or None,
                        model_checkpoint=args.checkpoint_opt or args.checkpoint, device=args.device,
                        img=args.test_img or args.img, show_progress=not args.quiet)
    print(f'Report: {path}')


def _test(args: argparse.Namespace) -> int:
    import json

    from mmdeploy.apis.evaluate import evaluate_backend_model, metrics_table
    from mmdeploy.utils.files import atomic_write_json

    model_cfg = args.model_cfg
    if args.cfg_options:
        from mmdeploy.utils.config import load_config

        model_cfg = load_config(args.model_cfg, what='model config')
        model_cfg.merge_from_dict(_key_values(args.cfg_options))
    result = evaluate_backend_model(args.deploy_cfg, model_cfg, args.model, args.checkpoint, args.device,
                                    compare_pytorch=args.compare_pytorch, limit=args.limit,
                                    batch_size=args.batch_size, show_progress=not args.quiet)
    print(f'{result.num_samples} test samples of {args.model_cfg}')
    print(metrics_table(result))
    if args.json:
        atomic_write_json(args.json, result.to_dict())
        print(f'wrote {args.json}')
    elif args.log_level == 'DEBUG':
        print(json.dumps(result.to_dict(), indent=1))
    return 0


def _key_values(items: List[str]) -> dict:
    """``['a.b=1', 'c=x']`` -> ``{'a.b': 1, 'c': 'x'}`` (Python literals where they parse, else strings)."""
    import ast

    from mmdeploy.errors import ConfigError

    options = {}
    for item in items:
        key, sep, value = item.partition('=')
        if not sep or not key:
            raise ConfigError(f'--cfg-options takes KEY=VALUE items, got {item!r}')
        try:
            options[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            options[key] = value
    return options


def _profile(args: argparse.Namespace) -> int:
    from mmdeploy.apis.profile import parse_ints, parse_shapes, profile_model

    result = profile_model(args.deploy_cfg, args.model_cfg, args.checkpoint_opt or args.checkpoint,
                           backends=args.backends, batch_sizes=parse_ints(args.batch_sizes, '--batch-sizes'),
                           shapes=parse_shapes(args.shapes), repeats=args.repeats, warmup=args.warmup,
                           device=args.device, img=args.img, include_pytorch=not args.no_pytorch,
                           show_progress=not args.quiet)
    print(result.header())
    print(result.table())
    if args.out:
        paths = result.write(args.out)
        print(f'wrote {paths["json"]} and {paths["png"]}')
    return 0


def _run(args: argparse.Namespace) -> int:
    """``mmdeploy run``: a deployed folder on images through the SDK (no codebase imported)."""
    import json
    import os

    from mmdeploy.sdk.handle import open_model, read_image
    from mmdeploy.sdk.results import to_dict, to_lines

    images = [read_image(path) for path in args.images]
    with open_model(args.model_dir, args.device) as handle:
        results = handle(images) if args.batch else [handle(img) for img in images]
    if args.json:
        print(json.dumps([{'image': path, 'result': to_dict(r)} for path, r in zip(args.images, results)], indent=1))
    else:
        for path, result in zip(args.images, results):
            print(f'{path}:')
            for line in to_lines(result):
                print(f'  {line}')
    if args.show_out:
        from mmdeploy.sdk.drawing import draw_result
        from mmdeploy.utils.files import atomic_write_image

        stem, ext = os.path.splitext(args.show_out)
        for i, (image, result) in enumerate(zip(images, results)):
            out = args.show_out if len(images) == 1 else f'{stem}_{i}{ext or ".png"}'
            atomic_write_image(out, draw_result(image, result, args.score_thr))
            print(f'wrote {out}', file=sys.stderr if args.json else sys.stdout)
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
    print('sdk components:')
    kinds: dict = {}
    for (kind, name), entry in registry.sdk_components.items():
        kinds.setdefault(kind, []).append(name if entry.available else f'{name} (missing {", ".join(entry.missing)})')
    for kind, names in kinds.items():
        print(f'  {kind}: {", ".join(sorted(names))}')
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
        how = getattr(entry, 'hint', None) or f'pip install {" ".join(entry.missing)}'
        return f'unavailable: missing {", ".join(entry.missing)} ({how})'
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
    dep.add_argument('--device', default=None,
                     help="'cpu' or 'cuda[:id]' (default: the deploy config's backend_config.device, else cpu)")
    dep.add_argument('--exporter', choices=('dynamo', 'torchscript'), default=None,
                     help="torch's ONNX exporter; overrides onnx_config.exporter")
    dep.add_argument('--no-verify', action='store_true',
                     help='do not compare the outputs with PyTorch (the default fails the deploy with '
                          f'exit status {EXIT_VERIFICATION_FAILED} when they differ beyond tolerance)')
    dep.add_argument('--safe', action='store_true', help='accept only JSON/YAML deploy configs (never run code)')
    dep.add_argument('--quiet', action='store_true', help='no progress lines')
    dep.add_argument('--report', nargs='?', const='', default=None, metavar='PATH',
                     help='write an HTML report (steps, ONNX op counts, comparison, pictures, a quick '
                          'profile); default PATH: WORK_DIR/report.html')
    dep.set_defaults(func=_deploy)
    plg = sub.add_parser('plugins', parents=[common], help='list plugins, backends and codebases')
    plg.set_defaults(func=_plugins)
    run = sub.add_parser('run', parents=[common], help='run a deployed model folder on images (the SDK)')
    run.add_argument('model_dir', help='the folder mmdeploy deploy wrote (deploy.json, pipeline.json, ...)')
    run.add_argument('images', nargs='+', metavar='IMAGE', help='image files')
    run.add_argument('--device', default='cpu', help="'cpu' or 'cuda[:id]'")
    run.add_argument('--show-out', default=None, metavar='OUT.png',
                     help='draw the result there (several images: OUT_0.png, OUT_1.png, ...)')
    run.add_argument('--score-thr', type=float, default=0.3, help='draw detections scoring at least this (0.3)')
    run.add_argument('--batch', action='store_true', help='run the images as one batch (a dynamic-batch model)')
    run.add_argument('--json', action='store_true', help='print the results as JSON')
    run.set_defaults(func=_run)
    tst = sub.add_parser('test', parents=[common], help="evaluate a deployed model on the model config's test set")
    tst.add_argument('deploy_cfg', help='deploy config the backend files were made with')
    tst.add_argument('model_cfg', help='model config with test_dataloader / test_evaluator (path or pkg::path)')
    tst.add_argument('--model', nargs='+', required=True, metavar='BACKEND_FILE',
                     help='backend files (end2end.onnx, end2end.xml, end2end.param end2end.bin, ...)')
    tst.add_argument('--checkpoint', default=None, help='PyTorch checkpoint (for --compare-pytorch)')
    tst.add_argument('--compare-pytorch', action='store_true',
                     help='evaluate the PyTorch model on the same batches and print the difference')
    tst.add_argument('--limit', type=int, default=None, help='evaluate the first N test samples only')
    tst.add_argument('--batch-size', type=int, default=None, help="override the test dataloader's batch size")
    tst.add_argument('--device', default='cpu', help="'cpu' or 'cuda[:id]'")
    tst.add_argument('--json', default=None, metavar='OUT', help='also write the metrics as JSON')
    tst.add_argument('--cfg-options', nargs='+', default=None, metavar='KEY=VALUE',
                     help='override model config keys, e.g. test_dataloader.dataset.data_root=data/demo/digits')
    tst.add_argument('--quiet', action='store_true', help='no progress bar')
    tst.set_defaults(func=_test)
    prf = sub.add_parser('profile', parents=[common], help='latency: PyTorch eager vs every installed backend')
    prf.add_argument('deploy_cfg', help='deploy config (its backend_config is swapped per backend)')
    prf.add_argument('model_cfg', help='model config path, or pkg::path')
    prf.add_argument('checkpoint', nargs='?', default=None, help='checkpoint (optional: random weights)')
    prf.add_argument('--checkpoint', dest='checkpoint_opt', metavar='CHECKPOINT', default=None,
                     help='checkpoint (same as positional)')
    prf.add_argument('--backends', default='all', help="'all' (every installed backend) or names: ort,openvino,ncnn")
    prf.add_argument('--batch-sizes', default='1', help='comma-separated batch sizes (default 1)')
    prf.add_argument('--shapes', default=None, help="input sizes WxH, comma-separated (default: the deploy "
                     "config's input_shape, else the test pipeline's size)")
    prf.add_argument('--repeats', type=int, default=20, help='timed calls per row (default 20)')
    prf.add_argument('--warmup', type=int, default=3, help='untimed calls first (default 3)')
    prf.add_argument('--img', default=None, help='image fed (default: fixed-seed noise of the input size)')
    prf.add_argument('--device', default='cpu', help="'cpu' or 'cuda[:id]'")
    prf.add_argument('--no-pytorch', action='store_true', help='do not time eager PyTorch')
    prf.add_argument('--out', default=None, metavar='DIR', help='write profile.json and profile.png there')
    prf.add_argument('--quiet', action='store_true', help='no progress bar')
    prf.set_defaults(func=_profile)
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
