"""Export support for mmcv: rewrites and custom ops of mmcv ops."""
