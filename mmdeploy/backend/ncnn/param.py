"""Read and edit ncnn ``.param`` text: layer lines, blob names, the shapes of ``Input`` layers.

An ncnn param file is the magic ``7767517``, a line ``<layer count> <blob count>``
and one line per layer: ``type name bottom_count top_count bottoms... tops...
key=value...``. pnnx names the graph inputs ``in0, in1, ...`` and outputs
``out0, out1, ...`` in the ONNX graph's order; :func:`rename_blobs` gives them
the ONNX names back, and :func:`set_input_shape` writes an ``Input`` layer's
``0=w 1=h 11=d 2=c`` (ncnn's own keys), which tells the wrapper how many axes
the engine sees (the batch axis, when pnnx dropped it, is not among them).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Sequence

from mmdeploy.errors import ModelFileError

MAGIC = '7767517'
#: ncnn's Input layer keys for width, height, depth, channels
_SHAPE_KEYS = ('0', '1', '11', '2')


@dataclass
class Layer:
    """One layer line of a param file."""

    type: str
    name: str
    bottoms: List[str]
    tops: List[str]
    params: List[str] = field(default_factory=list)

    def line(self) -> str:
        """The layer as a param-file line."""
        return ' '.join([self.type, self.name, str(len(self.bottoms)), str(len(self.tops)), *self.bottoms,
                         *self.tops, *self.params])


def parse_param(text: str, where: str = 'param') -> List[Layer]:
    """The layers of a param file's text.

    Raises:
        ModelFileError: not an ncnn text param file (wrong magic, truncated line).
    """
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 2 or lines[0].strip() != MAGIC:
        raise ModelFileError(f'{where} is not an ncnn param file (it must start with {MAGIC}); convert the ONNX '
                             f"file again with onnx2backend(..., 'ncnn', ...)")
    layers = []
    for number, line in enumerate(lines[2:], start=3):
        parts = line.split()
        try:
            bottoms, tops = int(parts[2]), int(parts[3])
            layer = Layer(parts[0], parts[1], parts[4:4 + bottoms], parts[4 + bottoms:4 + bottoms + tops],
                          parts[4 + bottoms + tops:])
        except (IndexError, ValueError):
            raise ModelFileError(f'{where}: line {number} is not an ncnn layer line ({line[:80]!r}); the file is '
                                 f'corrupt: convert the ONNX file again') from None
        if len(layer.bottoms) != bottoms or len(layer.tops) != tops:
            raise ModelFileError(f'{where}: line {number} is truncated; convert the ONNX file again')
        layers.append(layer)
    return layers


def format_param(layers: Sequence[Layer]) -> str:
    """Param-file text of ``layers`` (the counts line recomputed)."""
    blobs = {b for layer in layers for b in (*layer.bottoms, *layer.tops)}
    return '\n'.join([MAGIC, f'{len(layers)} {len(blobs)}', *(layer.line() for layer in layers)]) + '\n'


def rename_blobs(layers: Sequence[Layer], names: Mapping[str, str]) -> None:
    """Rename blobs in place (``{old: new}``); an unrelated blob already called ``new`` is renamed out of the way.

    Raises:
        ModelFileError: a new name ncnn cannot hold (empty, whitespace, over 255 characters).
    """
    for new in names.values():
        if not new or len(new) > 255 or any(c.isspace() for c in new):
            raise ModelFileError(f'blob name {new!r} cannot be an ncnn blob name (1-255 characters, no spaces); '
                                 f'rename that ONNX input or output')
    taken = {b for layer in layers for b in (*layer.bottoms, *layer.tops)}
    mapping: Dict[str, str] = dict(names)
    for blob in taken:
        if blob in names.values() and blob not in names:  # a pnnx blob happens to carry an ONNX name
            spare = f'{blob}_'
            while spare in taken or spare in names.values():
                spare += '_'
            mapping[blob] = spare
    for layer in layers:
        layer.bottoms = [mapping.get(b, b) for b in layer.bottoms]
        layer.tops = [mapping.get(t, t) for t in layer.tops]
        if layer.type == 'Input' and layer.name in names:
            layer.name = names[layer.name]


def set_input_shape(layer: Layer, shape: Sequence[int]) -> None:
    """Write an ``Input`` layer's shape (``[c, h, w]``-style, outermost first, 1 to 4 axes)."""
    if not 1 <= len(shape) <= 4:
        raise ModelFileError(f'input {layer.tops[0]!r} has {len(shape)} axes besides the batch; ncnn holds 1 to 4')
    keys = {1: ('0',), 2: ('1', '0'), 3: ('2', '1', '0'), 4: ('2', '11', '1', '0')}[len(shape)]
    kept = [p for p in layer.params if p.split('=')[0] not in _SHAPE_KEYS]
    layer.params = kept + [f'{k}={int(d)}' for k, d in zip(keys, shape)]


def input_shapes(layers: Sequence[Layer]) -> Dict[str, List[int]]:
    """``{input blob: shape ncnn sees, outermost first}`` from the ``Input`` layers (``[]`` when none is written)."""
    shapes = {}
    for layer in layers:
        if layer.type == 'Input':
            values = dict(p.split('=', 1) for p in layer.params if '=' in p)
            shapes[layer.tops[0]] = [int(values[k]) for k in ('2', '11', '1', '0') if k in values]
    return shapes


def input_ranks(layers: Sequence[Layer]) -> Dict[str, int]:
    """``{input blob: number of axes ncnn sees}`` from the ``Input`` layers' shapes (0 when none is written)."""
    return {name: len(shape) for name, shape in input_shapes(layers).items()}



def reshape_outputs(layers: List[Layer], shapes: Mapping[str, Sequence[int]]) -> None:
    """Append a ``Reshape`` to each output in ``shapes`` (``{output: shape ncnn should give}``; edits ``layers``).

    The layer that made the output now writes ``<output>.raw``.
    """
    for name, shape in shapes.items():
        if not 1 <= len(shape) <= 4:
            continue
        raw = f'{name}.raw'
        for layer in layers:
            layer.tops = [raw if t == name else t for t in layer.tops]
            layer.bottoms = [raw if b == name else b for b in layer.bottoms]
        keys = {1: ('0',), 2: ('1', '0'), 3: ('2', '1', '0'), 4: ('2', '11', '1', '0')}[len(shape)]
        layers.append(Layer('Reshape', f'{name}.rank', [raw], [name], [f'{k}={int(d)}' for k, d in zip(keys, shape)]))
