# 224x224 input, torch.export + AOTInductor into end2end.pt2 (compiled for the deploy device).
_base_ = ['./classification_static.py', '../_base_/backends/aot_inductor.py']
