# Demo classifier: mmpretrain's ResNet-18, narrowed to a quarter of its width (0.7 M parameters), for the
# 32x32 digits of tools/demo_data/make_datasets.py. Checkpoint: demo/models/digits_classifier.pth
# (tools/demo_data/train_demo_models.py). The data set lives under data_root (generate it first).
# The base is mmpretrain's own config, named by its path in the repository's .venv (tools/setup_env.sh):
# mmengine's 'mmpretrain::resnet/...' form needs setuptools' pkg_resources, which the pinned setuptools lacks.
_base_ = '../../.venv/lib/python3.11/site-packages/mmpretrain/.mim/configs/resnet/resnet18_8xb32_in1k.py'

data_root = 'data/demo/digits/'
classes = ('0', '1', '2', '3', '4', '5', '6', '7', '8', '9')

model = dict(
    backbone=dict(stem_channels=16, base_channels=16),
    head=dict(num_classes=10, in_channels=128, topk=(1, )))

data_preprocessor = dict(num_classes=10, mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5], to_rgb=True)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(32, 32)),
    dict(type='PackInputs'),
]
test_pipeline = train_pipeline

train_dataloader = dict(
    batch_size=32,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(_delete_=True, type='CustomDataset', data_root=data_root, data_prefix='train',
                 metainfo=dict(classes=classes), pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=64,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(_delete_=True, type='CustomDataset', data_root=data_root, data_prefix='val',
                 metainfo=dict(classes=classes), pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=5e-4))
param_scheduler = dict(_delete_=True, type='CosineAnnealingLR', by_epoch=True, T_max=8, eta_min=1e-4)
train_cfg = dict(by_epoch=True, max_epochs=8, val_interval=8)
auto_scale_lr = dict(enable=False)
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=-1))
randomness = dict(seed=0, deterministic=False)
