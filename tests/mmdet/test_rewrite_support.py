"""Rewrites apply to a subclass only when it overrides nothing they rely on (mmdeploy/apis/onnx/support.py).

Two parts:

- the rule itself, on toy classes and a private FunctionRewriter (no mmdet);
- every head / detector class mmdet registers that inherits a class with an
  mmdet rewrite is either refused by the check or listed in :data:`VERIFIED`
  with the test that compares its export with PyTorch numerically (weights
  made to detect, see det_helpers.spread_scores / the two-stage conftest).
"""
from __future__ import annotations

import inspect
import sys
import types

import pytest
import torch

from mmdeploy.apis.onnx.support import class_refusal, model_refusals, rules_for
from mmdeploy.core.rewriters.function_rewriter import FunctionRewriter

ENV = {'backend': 'onnxruntime', 'ir': 'onnx', 'exporter': 'dynamo', 'opset': 17}

ONE_STAGE = 'tests/mmdet/test_one_stage_detectors.py'
TWO_STAGE = 'tests/mmdet_two_stage/test_two_stage_detectors.py'

#: class -> the numeric test that exports it and compares with PyTorch (both exporters)
VERIFIED = {
    # one-stage: test_detections_match_pytorch / test_graph_matches_rewritten_forward [<name>-<exporter>-<mode>]
    'RetinaNet': f'{ONE_STAGE} [retinanet-*]',
    'RetinaHead': f'{ONE_STAGE} [retinanet-*]',
    'FCOS': f'{ONE_STAGE} [fcos-*]',
    'FCOSHead': f'{ONE_STAGE} [fcos-*]',
    'YOLOX': f'{ONE_STAGE} [yolox-*]',
    'YOLOXHead': f'{ONE_STAGE} [yolox-*]',
    'YOLOV3': f'{ONE_STAGE} [yolov3-*]',
    'YOLOV3Head': f'{ONE_STAGE} [yolov3-*]',
    'SingleStageDetector': f'{ONE_STAGE} [ssd-*] (the SSD config builds SingleStageDetector itself)',
    'SSDHead': f'{ONE_STAGE} [ssd-*]',
    # subclasses that add only losses, swapped into the verified configs
    'FreeAnchorRetinaHead': 'tests/mmdet/test_subclass_heads.py [dynamo-FreeAnchorRetinaHead-retinanet]',
    'PISARetinaHead': 'tests/mmdet/test_subclass_heads.py [dynamo-PISARetinaHead-retinanet]',
    'PISASSDHead': 'tests/mmdet/test_subclass_heads.py [dynamo-PISASSDHead-ssd]',
    'ATSS': 'tests/mmdet/test_subclass_heads.py::test_atss_matches_pytorch [dynamo], [torchscript]',
    'ATSSHead': 'tests/mmdet/test_subclass_heads.py::test_atss_matches_pytorch [dynamo], [torchscript]',
    # GFL / TOOD (own rewrites): test_detections_match_pytorch / test_graph_matches_rewritten_forward
    'GFL': 'tests/mmdet/test_gfl_tood_vfnet.py [gfl-*]',
    'GFLHead': 'tests/mmdet/test_gfl_tood_vfnet.py [gfl-*]',
    'LDHead': 'tests/mmdet/test_gfl_tood_vfnet.py::test_ldhead_matches_pytorch (GFLHead with a distillation loss)',
    'TOOD': 'tests/mmdet/test_gfl_tood_vfnet.py [tood-*], [tood_anchor_based-*]',
    'TOODHead': 'tests/mmdet/test_gfl_tood_vfnet.py [tood-*], [tood_anchor_based-*]',
    'VFNet': 'tests/mmdet/test_gfl_tood_vfnet.py [vfnet-*] (DCNv1 through the ONNX Runtime custom-op library)',
    'VFNetHead': 'tests/mmdet/test_gfl_tood_vfnet.py [vfnet-*] (DCNv1 through the ONNX Runtime custom-op library)',
    # test_detections_match_pytorch / test_graph_matches_rewritten_forward [<name>-<exporter>-<mode>]
    'CenterNet': 'tests/mmdet/test_centernet_yolof.py [centernet-*]',
    'CenterNetHead': 'tests/mmdet/test_centernet_yolof.py [centernet-*] (its own rewrite)',
    'YOLOF': 'tests/mmdet/test_centernet_yolof.py [yolof-*]',
    'YOLOFHead': 'tests/mmdet/test_centernet_yolof.py [yolof-*] (generic dense-head rewrite)',
    # two-stage: test_detection_matches_pytorch / test_instance_seg_matches_pytorch
    'FasterRCNN': f'{TWO_STAGE} [faster_rcnn]',
    'CascadeRCNN': f'{TWO_STAGE} [cascade_rcnn], [cascade_mask_rcnn]',
    'MaskRCNN': f'{TWO_STAGE} [mask_rcnn]',
    'RPNHead': f'{TWO_STAGE} [faster_rcnn] (every two-stage case)',
    'StandardRoIHead': f'{TWO_STAGE} [faster_rcnn], [mask_rcnn]',
    'DynamicRoIHead': 'tests/mmdet_two_stage/test_subclass_roi_heads.py [dynamo-DynamicRoIHead]',
    'PISARoIHead': 'tests/mmdet_two_stage/test_subclass_roi_heads.py [dynamo-PISARoIHead]',
    'CascadeRoIHead': f'{TWO_STAGE} [cascade_rcnn], [cascade_mask_rcnn]',
    'Shared2FCBBoxHead': f'{TWO_STAGE} [faster_rcnn], [cascade_rcnn], [mask_rcnn]',
    'FCNMaskHead': f'{TWO_STAGE} [mask_rcnn], [cascade_mask_rcnn]',
    'SingleRoIExtractor': f'{TWO_STAGE} (every case) and tests/mmdet_two_stage/test_roi_extractor.py',
    # base classes the configs above instantiate only through subclasses that add nothing to inference
    'TwoStageDetector': f'{TWO_STAGE} [faster_rcnn] (FasterRCNN adds only __init__ to TwoStageDetector)',
    'BBoxHead': f'{TWO_STAGE} [faster_rcnn] (its rewrite runs there; Shared2FCBBoxHead changes only forward)',
    # single-stage instance segmentation: test_solov2_matches_pytorch (both exporters, static and dynamic)
    'SOLOv2': 'tests/mmdet/test_solov2.py (every case)',
    'SOLOV2Head': 'tests/mmdet/test_solov2.py (every case)',
    'SingleStageInstanceSegmentor': 'tests/mmdet/test_solov2.py (SOLOv2 adds only __init__; the rewrite refuses '
                                    'any mask head but SOLOV2Head and any bbox_head)',
    # RTMDet / RTMDet-Ins: test_detections_match_pytorch / test_graph_matches_rewritten_forward
    'RTMDet': 'tests/mmdet/test_rtmdet.py (every case)',
    'RTMDetSepBNHead': 'tests/mmdet/test_rtmdet.py [rtmdet_tiny-*], [rtmdet_s-*]',
    'RTMDetHead': 'tests/mmdet/test_rtmdet.py [rtmdet_shared-*] (the tiny config with the shared-conv head)',
    'RTMDetInsSepBNHead': 'tests/mmdet/test_rtmdet.py [rtmdet_ins_tiny-*]',
    'RTMDetInsHead': 'tests/mmdet/test_rtmdet.py [rtmdet_ins_shared-*] (the tiny config with the shared-conv head)',
    # DETR family: test_detections_match_pytorch / test_graph_matches_rewritten_forward [<name>-<exporter>-<mode>]
    'DETR': 'tests/mmdet/test_detr.py [detr-*]',
    'ConditionalDETR': 'tests/mmdet/test_detr.py [conditional_detr-*]',
    'DetectionTransformer': 'tests/mmdet/test_detr.py (abstract: its forward rewrite runs for DETR and ConditionalDETR)',
    # multi-scale deformable attention (ORT custom-op library): test_detections_match_pytorch /
    # test_graph_matches_rewritten_forward [<name>-<exporter>-<mode>]
    'DeformableDETR': 'tests/mmdet/test_deformable_detr.py [deformable_detr-*], [deformable_detr_refine-*], '
                      '[deformable_detr_twostage-*]',
    'DINO': 'tests/mmdet/test_deformable_detr.py [dino-*] (heads: the forward rewrite relies on DeformableDETRHead)',
}


# --------------------------------------------------------------------------- the rule, on toy classes
def _toy_module():
    """A throwaway package of head classes: a base, overriding subclasses, one with its own rewrite."""
    mod = types.ModuleType('mmdeploy_toy_heads')

    class Base(torch.nn.Module):
        def predict(self, x):
            return self.decode(x)

        def decode(self, x):
            return x

        def loss(self, x):
            return x

    class OnlyLoss(Base):  # overrides nothing the rewrite relies on
        def loss(self, x):
            return -x

    class OwnDecode(Base):  # decodes its own way
        def decode(self, x):
            return 2 * x

    class Checked(OwnDecode):  # verified despite the override
        pass

    class CheckedChild(Checked):  # adds nothing: accepted through Checked
        pass

    class CheckedRedecode(Checked):  # overrides again: not covered by Checked's verification
        def decode(self, x):
            return 3 * x

    class OwnPredict(Base):  # overrides the rewritten method and has its own rewrite
        def predict(self, x):
            return x + 1

    class BarePredict(Base):  # overrides the rewritten method without a rewrite
        def predict(self, x):
            return x - 1

    class Denied(Base):
        pass

    class Root(torch.nn.Module):
        def __init__(self, head):
            super().__init__()
            self.head = head

        def forward(self, x):
            return self.head.predict(x)

    for cls in (Base, OnlyLoss, OwnDecode, Checked, CheckedChild, CheckedRedecode, OwnPredict, BarePredict,
                Denied, Root):
        cls.__module__ = mod.__name__
        setattr(mod, cls.__name__, cls)
    return mod


@pytest.fixture
def toy(monkeypatch):
    mod = _toy_module()
    monkeypatch.setitem(sys.modules, mod.__name__, mod)
    rewriter = FunctionRewriter()
    name = mod.__name__
    rewriter.register_rewriter(f'{name}.Base.predict', relies_on=('decode',), verified=(f'{name}.Checked',),
                               refused={f'{name}.Denied': 'never tried'})(lambda self, x: x)
    rewriter.register_rewriter(f'{name}.OwnPredict.predict')(lambda self, x: x)
    return types.SimpleNamespace(mod=mod, rules=rules_for(ENV, rewriter), rewriter=rewriter)


@pytest.mark.parametrize('name', ['Base', 'OnlyLoss', 'Checked', 'CheckedChild', 'OwnPredict'])
def test_accepted_classes(toy, name):
    assert class_refusal(getattr(toy.mod, name), toy.rules) is None


@pytest.mark.parametrize('name,words', [
    ('OwnDecode', ['OwnDecode.decode', 'Base.predict relies on']),
    ('CheckedRedecode', ['CheckedRedecode.decode', 'not verified']),
    ('BarePredict', ['BarePredict.predict overrides Base.predict', 'no rewrite of its own']),
    ('Denied', ['does not support Denied', 'never tried']),
])
def test_refused_classes_name_class_and_method(toy, name, words):
    message = class_refusal(getattr(toy.mod, name), toy.rules)
    assert message is not None and message.startswith(f'{name} cannot be exported')
    for word in words:
        assert word in message
    assert '\n' not in message and 'plugin' in message  # one line that says what to do


def test_model_check_walks_submodules_and_needs_a_rewritten_entry(toy):
    mod = toy.mod
    ok = mod.Root(mod.Checked())
    assert model_refusals(ok, toy.rules) == []
    refusals = model_refusals(mod.Root(mod.OwnDecode()), toy.rules)
    assert [r.path for r in refusals] == ['head'] and "module 'head'" in refusals[0].message
    # the root's forward has no rewrite: refused when the task needs one
    (entry,) = model_refusals(ok, toy.rules, entry_methods=('forward',))
    assert entry.message.startswith('Root cannot be exported: no mmdeploy rewrite turns Root.forward')


def test_relied_on_method_of_another_class(toy, monkeypatch):
    """A dotted relies_on entry is checked on every module that is an instance of that class."""
    name = toy.mod.__name__
    rewriter = FunctionRewriter()
    rewriter.register_rewriter(f'{name}.Root.forward', relies_on=(f'{name}.Base.decode',))(lambda self, x: x)
    rules = rules_for(ENV, rewriter)
    assert model_refusals(toy.mod.Root(toy.mod.OnlyLoss()), rules, ('forward',)) == []
    (refusal,) = model_refusals(toy.mod.Root(toy.mod.OwnDecode()), rules, ('forward',))
    assert 'OwnDecode.decode overrides Base.decode' in refusal.message


# --------------------------------------------------------------------------- every mmdet class
def _mmdet_classes():
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    register_all_modules()
    rules = rules_for(ENV)
    mmdet_rules = [r for r in rules.rules if r.cls.__module__.startswith('mmdet.')]
    classes = {name: cls for name, cls in MODELS.module_dict.items()
               if inspect.isclass(cls) and any(issubclass(cls, r.cls) for r in mmdet_rules)}
    return rules, classes


def test_every_mmdet_class_is_refused_or_verified():
    rules, classes = _mmdet_classes()
    assert len(classes) > 80  # the walk sees mmdet's registry (about 110 classes in mmdet 3.1)
    neither = sorted(name for name, cls in classes.items()
                     if class_refusal(cls, rules) is None and name not in VERIFIED)
    assert not neither, f'neither refused nor numerically verified (add a test or a refusal): {neither}'


def test_verified_classes_are_accepted():
    """The table lists classes the check lets through (a refusal there would break supported models)."""
    rules, classes = _mmdet_classes()
    assert set(VERIFIED) <= set(classes)
    refused = {name: class_refusal(classes[name], rules) for name in VERIFIED}
    assert not {k: v for k, v in refused.items() if v}


@pytest.mark.parametrize('name,method', [
    ('FoveaHead', '_predict_by_feat_single'),
    ('PAAHead', 'predict_by_feat'),
    ('SABLHead', '_predict_by_feat_single'),
    ('HybridTaskCascadeRoIHead', 'predict'),
    ('MaskFormer', 'predict'),
])
def test_heads_decoding_their_own_way_are_refused(name, method):
    rules, classes = _mmdet_classes()
    message = class_refusal(classes[name], rules)
    assert message and message.startswith(f'{name} cannot be exported') and f'.{method}' in message
