# Dynamic batch / height / width (torch.export Dim.AUTO), compiled once for every size.
_base_ = ['./classification_dynamic.py', '../_base_/backends/aot_inductor.py']
