"""Run an exported super-resolution network and return mmagic DataSamples, as mmagic's predict does."""
from __future__ import annotations

import logging
from typing import Any, Dict, List

from mmdeploy.codebase.base.device import on_backend_device
from mmdeploy.codebase.base.task import quiet_mmengine


def quiet_missing_gt() -> Any:
    """Hide mmagic's "Cannot find key 'gt_img'" warnings for the block: deploying has no ground truth.

    mmagic's ``DataPreprocessor`` logs one per image when a sample has no
    ``gt_img``; only errors of mmengine's logger pass meanwhile.
    """
    return quiet_mmengine(logging.ERROR)


class SuperResolutionBackendModel:
    """A backend restorer with the PyTorch model's ``test_step`` contract.

    Each result is an mmagic ``DataSample`` with the input sample's metainfo,
    ``input`` (the de-normalised input) and ``output.pred_img`` (the restored
    image ``[C, H, W]``, float 0..255, BGR for colour images), as
    ``BaseEditModel`` predicts, so mmagic's metrics and visualiser take it.

    Args:
        wrapper: the backend wrapper (``wrapper({input name: tensor})``).
        data_preprocessor: the model's mmagic ``DataPreprocessor``; it
            normalises the inputs and de-normalises the outputs.
        output_name: the graph output holding the image.
    """

    def __init__(self, wrapper: Any, data_preprocessor: Any, output_name: str = 'output') -> None:
        self.wrapper = wrapper
        self.data_preprocessor = on_backend_device(data_preprocessor, wrapper)
        self.output_name = output_name

    def test_step(self, data: Dict[str, Any]) -> List[Any]:
        """Preprocess ``data`` (``inputs`` and ``data_samples``) and restore the images."""
        with quiet_missing_gt():
            batch = self.data_preprocessor(data, False)
        return self.predict(batch['inputs'], batch['data_samples'])

    def forward_raw(self, inputs: Any) -> Any:
        """The graph's output for a preprocessed ``[N, C, H, W]`` tensor (normalised, on the engine's device)."""
        import torch

        outputs = self.wrapper({self.wrapper.input_names[0]: inputs.float().contiguous()})
        output = outputs[self.output_name] if self.output_name in outputs else next(iter(outputs.values()))
        return torch.as_tensor(output)

    def predict(self, inputs: Any, data_samples: Any = None) -> List[Any]:
        """Run the engine on preprocessed ``inputs``; split into one DataSample per image.

        ``data_samples`` is the preprocessor's stacked ``DataSample`` (its
        channel order and padding metainfo de-normalise the output), None
        for bare tensors.
        """
        from mmagic.models.base_models import BaseEditModel
        from mmagic.structures import DataSample

        output = self.forward_raw(inputs).to(inputs.device)
        if data_samples is None:
            data_samples = DataSample.stack([DataSample() for _ in range(inputs.shape[0])])
        images = self.data_preprocessor.destruct(output, data_samples)
        predictions = DataSample(pred_img=images.cpu())
        # mmagic's own packing (input, output per sample); the model class's override is refused before export
        return BaseEditModel.convert_to_datasample(self, predictions, data_samples, inputs)
