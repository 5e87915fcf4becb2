# Demo detector: mmdet's RTMDet-tiny, narrowed (widen_factor 0.25, 64-channel neck and head), for the 128x128
# shapes (circle, square, triangle) of tools/demo_data/make_datasets.py. Checkpoint:
# demo/models/shapes_detector.pth (tools/demo_data/train_demo_models.py). Trained from scratch: no pretrained
# backbone, no mosaic / mixup, no EMA (a few minutes on a CPU).
# The base is mmdet's own config, named by its path in the repository's .venv (tools/setup_env.sh):
# mmengine's 'mmdet::rtmdet/...' form needs setuptools' pkg_resources, which the pinned setuptools lacks.
_base_ = '../../.venv/lib/python3.11/site-packages/mmdet/.mim/configs/rtmdet/rtmdet_tiny_8xb32-300e_coco.py'

data_root = 'data/demo/shapes/'
metainfo = dict(classes=('circle', 'square', 'triangle'),
                palette=[(220, 60, 60), (60, 180, 75), (60, 90, 220)])
image_size = 128
max_epochs = 25
base_lr = 0.004

norm_cfg = dict(type='BN')
model = dict(
    backbone=dict(widen_factor=0.25, norm_cfg=norm_cfg, init_cfg=None),
    neck=dict(in_channels=[64, 128, 256], out_channels=64, norm_cfg=norm_cfg),
    bbox_head=dict(num_classes=3, in_channels=64, feat_channels=64, norm_cfg=norm_cfg),
    test_cfg=dict(nms_pre=1000, score_thr=0.001, max_per_img=100))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomFlip', prob=[0.25, 0.25], direction=['horizontal', 'vertical']),
    dict(type='Resize', scale=(image_size, image_size), keep_ratio=True),
    dict(type='Pad', size=(image_size, image_size), pad_val=dict(img=(114, 114, 114))),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(image_size, image_size), keep_ratio=True),
    dict(type='Pad', size=(image_size, image_size), pad_val=dict(img=(114, 114, 114))),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]

train_dataloader = dict(
    batch_size=16,
    num_workers=0,
    persistent_workers=False,
    pin_memory=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, ann_file='annotations/train.json',
                 data_prefix=dict(img='img_dir/train/'), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, ann_file='annotations/val.json',
                 data_prefix=dict(img='img_dir/val/'), pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/val.json', metric='bbox')
test_evaluator = val_evaluator

train_cfg = dict(_delete_=True, type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = dict(optimizer=dict(lr=base_lr))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=60),
    dict(type='CosineAnnealingLR', eta_min=base_lr * 0.05, begin=max_epochs // 2, end=max_epochs,
         T_max=max_epochs // 2, by_epoch=True, convert_to_iter_based=True),
]
custom_hooks = []
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=-1))
randomness = dict(seed=0, deterministic=False)
