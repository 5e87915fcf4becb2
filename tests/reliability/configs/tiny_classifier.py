# A tiny mmpretrain classifier (one ResNet stage, 8 channels, 10 classes): a real
# model config of the codebase that exports in about a second.
default_scope = 'mmpretrain'
model = dict(
    type='ImageClassifier',
    backbone=dict(type='ResNet', depth=18, num_stages=1, strides=(1, ), dilations=(1, ),
                  out_indices=(0, ), base_channels=8, stem_channels=8),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=10, in_channels=8,
              loss=dict(type='CrossEntropyLoss', loss_weight=1.0), topk=(1, )),
)
data_preprocessor = dict(num_classes=10, mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                         to_rgb=True)
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(32, 32)),
    dict(type='PackInputs'),
]
