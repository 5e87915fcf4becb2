"""Run an exported segmentor and return mmseg SegDataSamples, like the PyTorch model does."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from mmdeploy.codebase.base.device import on_backend_device

#: data field of the results holding the class map at the network input size (before cropping the
#: padding and resizing to the original image): what the graph computed, compared with PyTorch's
NET_FIELD = 'net_sem_seg'


def restore_to_original(output: Any, meta: Dict[str, Any], is_map: bool, align_corners: bool = False) -> Any:
    """One image's ``[C, H, W]`` graph output in original-image pixels, as mmseg's ``postprocess_result``.

    The padding the data preprocessor added (``img_padding_size`` /
    ``padding_size``) is cut off, a flip undone, then the result is resized to
    ``meta['ori_shape']``: logits bilinearly (mmseg's own rule, so the argmax
    taken afterwards is PyTorch's), a class map by nearest neighbour at the
    pixel centres (``nearest-exact``: each pixel takes the class of the input
    pixel whose centre is closest, where bilinear logits weigh most; only
    pixels on class borders can differ from mmseg's argmax of resized logits).
    """
    import torch.nn.functional as F

    left, right, top, bottom = meta.get('img_padding_size', meta.get('padding_size', None)) or (0, 0, 0, 0)
    height, width = output.shape[-2:]
    output = output[None, :, top:height - bottom, left:width - right]
    if meta.get('flip'):
        output = output.flip(dims=(3,) if meta.get('flip_direction') == 'horizontal' else (2,))
    ori_shape = tuple(int(v) for v in meta.get('ori_shape', output.shape[-2:])[:2])
    if tuple(output.shape[-2:]) != ori_shape:
        if is_map:
            output = F.interpolate(output.float(), size=ori_shape, mode='nearest-exact').to(output.dtype)
        else:
            output = F.interpolate(output, size=ori_shape, mode='bilinear', align_corners=align_corners)
    return output[0]


class SegmentationBackendModel:
    """A backend segmentor with the PyTorch model's ``test_step`` contract.

    Args:
        wrapper: the backend wrapper (``wrapper({input name: tensor})``).
        data_preprocessor: the model config's ``SegDataPreProcessor``.
        output_name: name of the graph's output.
        with_argmax: the graph outputs a class map ``[N, 1, H, W]``
            (``codebase_config.with_argmax``); False: logits ``[N, C, H, W]``.
        align_corners: the decode head's, for resizing logits.
        threshold: the decode head's threshold of one-channel (binary) logits.
    """

    def __init__(self, wrapper: Any, data_preprocessor: Any, output_name: str = 'output',
                 with_argmax: bool = True, align_corners: bool = False, threshold: float = 0.3) -> None:
        self.wrapper = wrapper
        self.data_preprocessor = on_backend_device(data_preprocessor, wrapper)
        self.output_name = output_name
        self.with_argmax = with_argmax
        self.align_corners = align_corners
        self.threshold = threshold

    def test_step(self, data: Dict[str, Any]) -> List[Any]:
        """Preprocess ``data`` (``inputs`` and ``data_samples``) and predict."""
        batch = self.data_preprocessor(data, False)
        return self.predict(batch['inputs'], batch['data_samples'])

    def forward_raw(self, inputs: Any) -> Any:
        """The graph's output for a preprocessed ``[N, 3, H, W]`` tensor, as a CPU torch tensor."""
        import torch

        outputs = self.wrapper({self.wrapper.input_names[0]: inputs.float().contiguous()})
        value = outputs[self.output_name] if self.output_name in outputs else next(iter(outputs.values()))
        return value.detach().cpu() if hasattr(value, 'detach') else torch.from_numpy(value)

    def class_map(self, output: Any) -> Any:
        """One image's graph output ``[C, H, W]`` as a ``[1, H, W]`` class map (int64)."""
        if self.with_argmax:
            return output.long()
        if output.shape[0] > 1:
            return output.argmax(dim=0, keepdim=True)
        return (output.sigmoid() > self.threshold).long()

    def predict(self, inputs: Any, data_samples: Optional[Sequence[Any]] = None) -> List[Any]:
        """New SegDataSamples: ``pred_sem_seg`` ``[1, H, W]`` in original-image pixels, ``seg_logits``
        ``[C, H, W]`` when the graph returns logits (``with_argmax=False``), and the class map at the
        network input size as :data:`NET_FIELD`."""
        from mmengine.structures import PixelData
        from mmseg.structures import SegDataSample

        raw = self.forward_raw(inputs)
        if self.with_argmax and raw.dim() == 3:  # a graph returning [N, H, W]
            raw = raw[:, None]
        results = []
        for i in range(raw.shape[0]):
            meta = data_samples[i].metainfo if data_samples else {}
            # a new sample per result: the caller's samples may hold PyTorch's predictions
            sample = SegDataSample(metainfo=meta)
            sample.set_field(PixelData(data=self.class_map(raw[i])), NET_FIELD)
            output = restore_to_original(raw[i], meta, self.with_argmax, self.align_corners)
            if self.with_argmax:
                sample.pred_sem_seg = PixelData(data=output.long())
            else:
                if output.shape[0] > 1:
                    pred = output.argmax(dim=0, keepdim=True)
                else:
                    output = output.sigmoid()
                    pred = (output > self.threshold).to(output)
                sample.seg_logits = PixelData(data=output)
                sample.pred_sem_seg = PixelData(data=pred)
            results.append(sample)
        return results
