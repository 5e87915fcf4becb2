"""The backend model both mmocr tasks share: the graph's raw output, then mmocr's own postprocessor."""
from __future__ import annotations

from typing import Any, Dict, List

from mmdeploy.codebase.base.device import host_array, on_backend_device


class PostprocessedBackendModel:
    """Runs a backend graph and hands its output to an mmocr postprocessor, outside the graph.

    Args:
        wrapper: the backend wrapper.
        data_preprocessor: the model config's data preprocessor.
        postprocessor: the mmocr postprocessor that turns the graph's output
            into data samples (polygons, or decoded strings).
        output_name: the graph output to postprocess (the first one when the
            graph has no output of that name).
    """

    def __init__(self, wrapper: Any, data_preprocessor: Any, postprocessor: Any, output_name: str = 'output') -> None:
        self.wrapper = wrapper
        self.data_preprocessor = on_backend_device(data_preprocessor, wrapper)
        self.postprocessor = postprocessor
        self.output_name = output_name

    def test_step(self, data: Dict[str, Any]) -> List[Any]:
        """Same contract as the PyTorch model's ``test_step``."""
        batch = self.data_preprocessor(data, False)
        return self.predict(batch['inputs'], batch['data_samples'])

    def predict(self, inputs: Any, data_samples: List[Any]) -> List[Any]:
        """Run the backend on a preprocessed ``[N, C, H, W]`` tensor and postprocess its output."""
        import torch

        outputs = self.wrapper({self.wrapper.input_names[0]: inputs.float().contiguous()})
        raw = outputs[self.output_name] if self.output_name in outputs else next(iter(outputs.values()))
        return self.postprocessor(torch.from_numpy(host_array(raw)), data_samples)
