"""Train the demo models of demo/models/ on the generated demo data and write their checkpoints.

Usage: python tools/demo_data/train_demo_models.py [classifier detector segmentor] [--data-root data/demo]
                                                   [--work-dir work_dirs/demo_train] [--max-epochs N]

Each model is trained with its codebase's own runner (mmengine ``Runner`` built from the config in
demo/models/, fixed seed, the runner's log shows the progress), then its weights are stored stripped of
the optimizer state and in float16 (``demo/models/<name>.pth``, written under a temporary name and renamed),
and the stored checkpoint is loaded into a fresh runner and evaluated on the val set: that metric is printed.
Generate the data first: ``python tools/demo_data/make_datasets.py``.
"""
import argparse
import os
import os.path as osp
import sys
import time
from typing import Dict, Optional

import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MODELS_DIR = osp.join(REPO, 'demo', 'models')
# name -> (config file, data sub-folder, key of the metric that is printed)
DEMO_MODELS = {
    'classifier': ('digits_classifier', 'digits', 'accuracy/top1'),
    'detector': ('shapes_detector', 'shapes', 'coco/bbox_mAP'),
    'segmentor': ('shapes_segmentor', 'shapes', 'mIoU'),
}


def load_demo_config(name: str, data_root: Optional[str] = None, work_dir: Optional[str] = None):
    """The mmengine Config of demo model ``name`` (a key of ``DEMO_MODELS``), data_root redirected if given."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(MODELS_DIR, DEMO_MODELS[name][0] + '.py'))
    if data_root is not None:
        root = osp.join(data_root, DEMO_MODELS[name][1]) + '/'
        for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            cfg[key].dataset.data_root = root
        for key in ('val_evaluator', 'test_evaluator'):
            if 'ann_file' in cfg[key]:
                cfg[key].ann_file = osp.join(root, osp.relpath(cfg[key].ann_file, cfg.data_root))
    if work_dir is not None:
        cfg.work_dir = work_dir
    return cfg


def strip_checkpoint(model: torch.nn.Module, dataset_meta: Optional[Dict], path: str) -> None:
    """Save ``model``'s weights in float16 (integer buffers kept) with the dataset meta, nothing else."""
    state = {k: (v.half() if v.is_floating_point() else v).cpu() for k, v in model.state_dict().items()}
    meta = dict(dataset_meta=dataset_meta or {}, note='float16 weights; tools/demo_data/train_demo_models.py')
    tmp = path + '.tmp'
    torch.save(dict(meta=meta, state_dict=state), tmp)
    os.replace(tmp, path)


def evaluate_checkpoint(name: str, checkpoint: str, data_root: Optional[str], work_dir: str) -> Dict:
    """Load ``checkpoint`` into a fresh runner of demo model ``name`` and return its val metrics."""
    from mmengine.runner import Runner
    cfg = load_demo_config(name, data_root, work_dir)
    cfg.load_from = checkpoint
    return Runner.from_cfg(cfg).test()


def train_one(name: str, data_root: Optional[str], work_root: str, max_epochs: Optional[int]) -> Dict:
    """Train demo model ``name``, write its stripped checkpoint and return the checkpoint's val metrics."""
    from mmengine.runner import Runner
    config_name = DEMO_MODELS[name][0]
    cfg = load_demo_config(name, data_root, osp.join(work_root, config_name))
    if max_epochs is not None and 'max_epochs' in cfg.train_cfg:  # the segmentor counts iterations
        cfg.train_cfg.max_epochs = max_epochs
        cfg.train_cfg.val_interval = max_epochs
    start = time.time()
    runner = Runner.from_cfg(cfg)
    model = runner.train()
    print(f'[demo] {name}: trained in {time.time() - start:.0f} s', flush=True)
    path = osp.join(MODELS_DIR, config_name + '.pth')
    strip_checkpoint(model, getattr(runner.train_dataloader.dataset, 'metainfo', None), path)
    metrics = evaluate_checkpoint(name, path, data_root, osp.join(work_root, config_name + '_eval'))
    key = DEMO_MODELS[name][2]
    print(f'[demo] {name}: {osp.relpath(path, REPO)} ({osp.getsize(path) / 2**20:.2f} MiB), '
          f'val {key} = {metrics[key]:.4f}', flush=True)
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('models', nargs='*', metavar='MODEL',
                        help=f"which models to train, of {', '.join(DEMO_MODELS)} (default: all)")
    parser.add_argument('--data-root', default=None, help='the folder make_datasets.py wrote (default data/demo)')
    parser.add_argument('--work-dir', default='work_dirs/demo_train', help='logs and intermediate files')
    parser.add_argument('--max-epochs', type=int, default=None, help="override the config's epochs (quick runs)")
    parser.add_argument('--threads', type=int, default=1,
                        help='torch CPU threads (default 1: on a busy machine more threads spin and run ~10x slower)')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    unknown = sorted(set(args.models) - set(DEMO_MODELS))
    if unknown:
        parser.error(f"unknown model {', '.join(unknown)}: choose from {', '.join(DEMO_MODELS)}")
    os.chdir(REPO)  # the configs' data_root is relative to the repository
    results = {}
    for name in args.models or list(DEMO_MODELS):
        results[name] = train_one(name, args.data_root, args.work_dir, args.max_epochs)
    for name, metrics in results.items():
        key = DEMO_MODELS[name][2]
        print(f'{name:<11} {key:<15} {metrics[key]:.4f}')
    sys.exit(0)


if __name__ == '__main__':
    main()
