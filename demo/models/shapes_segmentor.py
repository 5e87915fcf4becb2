# Demo segmentor: mmseg's FCN with a ResNet-18-D8 backbone, narrowed to a quarter of its width (64-channel
# head, no auxiliary head), for the 128x128 shapes of tools/demo_data/make_datasets.py as per-pixel classes
# (background, circle, square, triangle). Checkpoint: demo/models/shapes_segmentor.pth
# (tools/demo_data/train_demo_models.py). Trained from scratch (no pretrained backbone).
# The base is mmseg's own config, named by its path in the repository's .venv (tools/setup_env.sh):
# mmengine's 'mmseg::fcn/...' form needs setuptools' pkg_resources, which the pinned setuptools lacks.
_base_ = '../../.venv/lib/python3.11/site-packages/mmseg/.mim/configs/fcn/fcn_r18-d8_4xb2-80k_cityscapes-512x1024.py'

data_root = 'data/demo/shapes/'
metainfo = dict(classes=('background', 'circle', 'square', 'triangle'),
                palette=[[0, 0, 0], [220, 60, 60], [60, 180, 75], [60, 90, 220]])
image_size = (128, 128)
max_iters = 900

norm_cfg = dict(type='BN', requires_grad=True)
data_preprocessor = dict(size=image_size)
model = dict(
    pretrained=None,
    data_preprocessor=data_preprocessor,
    backbone=dict(stem_channels=16, base_channels=16, norm_cfg=norm_cfg),
    # the background covers ~90% of the pixels: weigh it less so that the shapes are learnt early
    decode_head=dict(in_channels=128, channels=64, num_classes=4, norm_cfg=norm_cfg,
                     loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0,
                                      class_weight=[0.3, 1.0, 1.0, 1.0])),
    auxiliary_head=None)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_size, keep_ratio=True),  # the trained scale; logits go back to the image's
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]

train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(_delete_=True, type='BaseSegDataset', data_root=data_root, metainfo=metainfo,
                 img_suffix='.png', seg_map_suffix='.png', reduce_zero_label=False,
                 data_prefix=dict(img_path='img_dir/train', seg_map_path='ann_dir/train'),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(_delete_=True, type='BaseSegDataset', data_root=data_root, metainfo=metainfo,
                 img_suffix='.png', seg_map_suffix='.png', reduce_zero_label=False,
                 data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val'),
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

optim_wrapper = dict(_delete_=True, type='OptimWrapper',
                     optimizer=dict(type='AdamW', lr=0.002, weight_decay=0.01))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0, end=50),
    dict(type='PolyLR', eta_min=1e-5, power=0.9, begin=50, end=max_iters, by_epoch=False),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(logger=dict(interval=20), checkpoint=dict(interval=-1))
randomness = dict(seed=0, deterministic=False)
