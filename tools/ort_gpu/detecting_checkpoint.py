"""Write a checkpoint of an mmdet one-stage detector whose random head detects.

mmdet initialises the score convs to a constant prior (sigmoid ~0.01), so a
model with random weights finds nothing and a deploy compares no boxes. This
redraws the score convs (as the detection tests do, ``spread_scores``) so that
their logits on the image have the given mean and spread, and saves the
weights for ``mmdeploy deploy ... CHECKPOINT``.

    python tools/ort_gpu/detecting_checkpoint.py mmdet::retinanet/retinanet_r18_fpn_1x_coco.py \
        configs/mmdet/detection/detection_onnxruntime_dynamic.py demo/demo.png retinanet_detecting.pth
"""
import argparse
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, 'tests', 'mmdet'))


def main() -> None:
    import torch
    from det_helpers import spread_scores

    from mmdeploy.apis.pytorch2onnx import build_task_processor
    from mmdeploy.utils.config import load_config

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('model_cfg')
    parser.add_argument('deploy_cfg')
    parser.add_argument('img')
    parser.add_argument('output')
    parser.add_argument('--score-convs', nargs='+', default=[r'retina_cls'], help='regexes of the score convs')
    parser.add_argument('--mean', type=float, default=-8.0, help='mean logit of the score convs')
    parser.add_argument('--std', type=float, default=1.5, help='spread of their logits')
    args = parser.parse_args()
    torch.manual_seed(0)
    task = build_task_processor(load_config(args.model_cfg, what='model config'),
                                load_config(args.deploy_cfg, what='deploy config'), 'cpu')
    model = task.build_pytorch_model()
    _, inputs = task.create_input(args.img, task.ir_input_shape(), model.data_preprocessor)
    spread_scores(model, inputs, args.score_convs, args.mean, args.std)
    torch.save({'state_dict': model.state_dict()}, args.output)
    print(f'wrote {args.output}')


if __name__ == '__main__':
    main()
