"""ncnn ``.param`` editing (mmdeploy.backend.ncnn.param / manager.finish_param): names and Input shapes."""
from __future__ import annotations

import pytest

from mmdeploy.backend.ncnn.manager import finish_param
from mmdeploy.backend.ncnn.param import input_ranks, parse_param
from mmdeploy.errors import ModelFileError

# what pnnx writes for a two-input, two-output graph; blob '3' is internal
PNNX_PARAM = """7767517
6 7
Input                    in0                      0 1 in0
Input                    in1                      0 1 in1
BinaryOp                 add_0                    2 1 in0 in1 2 0=0
Split                    splitncnn_0              1 2 2 3 4
ReLU                     relu_1                   1 1 3 out0
Sigmoid                  sigmoid_2                1 1 4 out1
"""


def test_onnx_names_and_input_shapes_are_written():
    text = finish_param(PNNX_PARAM, {'input': [1, 3, 8, 8], 'rois': [1000, 256, 7, 7]}, ['boxes', 'scores'])
    layers = parse_param(text)
    assert text.splitlines()[1] == '6 7'
    assert [(layer.type, layer.name, layer.tops) for layer in layers[:2]] == \
        [('Input', 'input', ['input']), ('Input', 'rois', ['rois'])]
    assert layers[2].bottoms == ['input', 'rois']
    assert layers[4].tops == ['boxes'] and layers[5].tops == ['scores']
    # batch of 1 dropped (ncnn sees c, h, w); a leading 1000 kept (4 axes: c, d, h, w)
    assert layers[0].params == ['2=3', '1=8', '0=8']
    assert layers[1].params == ['2=1000', '11=256', '1=7', '0=7']
    assert input_ranks(layers) == {'input': 3, 'rois': 4}


def test_an_internal_blob_carrying_an_onnx_name_is_moved_aside():
    text = finish_param(PNNX_PARAM, {'3': [1, 4], 'b': [1, 4]}, ['out', 'y'])
    layers = parse_param(text)
    split, relu = layers[3], layers[4]
    assert split.tops[0] == relu.bottoms[0] == '3_'  # the old internal '3', renamed out of the way
    assert layers[0].tops == ['3'] and layers[2].bottoms == ['3', 'b']


@pytest.mark.parametrize('text, match', [
    ('7767518\n0 0\n', 'not an ncnn param file'),
    ('7767517\n1 1\nInput in0 0 1\n', 'truncated'),
    ('7767517\n1 1\nInput in0 x 1 in0\n', 'not an ncnn layer line'),
])
def test_corrupt_param_text_is_refused(text, match):
    with pytest.raises(ModelFileError, match=match):
        parse_param(text)


def test_an_onnx_name_ncnn_cannot_hold_is_refused():
    with pytest.raises(ModelFileError, match='ncnn blob name'):
        finish_param(PNNX_PARAM, {'an input': [1, 4], 'b': [1, 4]}, ['x', 'y'])


def test_layers_this_ncnn_build_lacks_are_named():
    """TopK is no ncnn layer; ArgMax is one, but the pip build leaves it out (its loader says 'not exists')."""
    from mmdeploy.backend.ncnn.manager import _unknown_layers

    text = '7767517\n3 3\nInput in0 0 1 in0\nArgMax a 1 1 in0 x\nTopK t 1 1 x out0\n'
    assert _unknown_layers(text) == ['ArgMax', 'TopK']
    assert _unknown_layers(PNNX_PARAM) == []


def test_plugins_listing_shows_ncnn_and_pnnx_versions():
    """``mmdeploy plugins`` line of the backend: both packages it registered as ``requires``, with versions."""
    from importlib.metadata import version

    from mmdeploy.cli import _backend_state
    from mmdeploy.plugins import get_registry

    entry = get_registry().backends['ncnn']
    assert entry.plugin == 'mmdeploy.backend.ncnn.plugin'
    assert _backend_state(entry) == f"available, ncnn {version('ncnn')}, pnnx {version('pnnx')}"
