// Deformable convolution (DCNv1) and modulated deformable convolution (DCNv2), float32, CPU.
//
// Engine-independent: plain pointers to contiguous NCHW buffers, no engine API. The ONNX Runtime
// custom-op library (csrc/ops/onnxruntime) and any other engine's layer call these functions.
// Semantics are mmcv's (ops/csrc/common/*deform_conv*): each output position samples the input at
// (y * stride - pad + ky * dilation + offset_y, x * stride - pad + kx * dilation + offset_x) with
// bilinear interpolation (corners outside the image read 0; a sample at or past -1 / size reads 0),
// multiplies by the mask (DCNv2), and the samples are contracted with the weight per group.
#pragma once

#include <cstdint>

#include "parallel.h"

namespace mmdeploy_ops {

struct DeformConvShape {
  int64_t batch, in_channels, in_height, in_width;
  int64_t out_channels, kernel_h, kernel_w;
  int64_t stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w;
  int64_t groups, deform_groups;

  int64_t out_height() const { return (in_height + 2 * pad_h - (dilation_h * (kernel_h - 1) + 1)) / stride_h + 1; }
  int64_t out_width() const { return (in_width + 2 * pad_w - (dilation_w * (kernel_w - 1) + 1)) / stride_w + 1; }
};

// Returns nullptr when the shape is valid, else a message naming what is wrong.
const char* check_deform_conv_shape(const DeformConvShape& s);

// input [N, C, H, W]; offset [N, deform_groups * 2 * kh * kw, Ho, Wo] as (dy, dx) pairs per kernel
// point; mask [N, deform_groups * kh * kw, Ho, Wo] or nullptr (DCNv1: every mask is 1);
// weight [C_out, C / groups, kh, kw]; bias [C_out] or nullptr; output [N, C_out, Ho, Wo].
void deform_conv2d_forward(const float* input, const float* offset, const float* mask, const float* weight,
                           const float* bias, float* output, const DeformConvShape& s,
                           const ParallelFor& parallel_for = serial_for);

}  // namespace mmdeploy_ops
