#include "deform_conv.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace mmdeploy_ops {
namespace {

// Bilinear sample of one channel plane at (y, x); corners outside the plane count as 0.
inline float bilinear(const float* plane, int64_t height, int64_t width, float y, float x) {
  if (!(y > -1.f && x > -1.f && y < static_cast<float>(height) && x < static_cast<float>(width))) return 0.f;
  const int64_t y0 = static_cast<int64_t>(std::floor(y)), x0 = static_cast<int64_t>(std::floor(x));
  const int64_t y1 = y0 + 1, x1 = x0 + 1;
  const float ly = y - static_cast<float>(y0), lx = x - static_cast<float>(x0);
  const float hy = 1.f - ly, hx = 1.f - lx;
  const float v00 = (y0 >= 0 && x0 >= 0) ? plane[y0 * width + x0] : 0.f;
  const float v01 = (y0 >= 0 && x1 < width) ? plane[y0 * width + x1] : 0.f;
  const float v10 = (y1 < height && x0 >= 0) ? plane[y1 * width + x0] : 0.f;
  const float v11 = (y1 < height && x1 < width) ? plane[y1 * width + x1] : 0.f;
  return hy * hx * v00 + hy * lx * v01 + ly * hx * v10 + ly * lx * v11;
}

// columns [C * kh * kw, Ho * Wo] of one image: the (masked) samples each output position sees.
void im2col(const float* input, const float* offset, const float* mask, const DeformConvShape& s,
            float* columns, const ParallelFor& parallel_for) {
  const int64_t ho = s.out_height(), wo = s.out_width(), positions = ho * wo;
  const int64_t kernel = s.kernel_h * s.kernel_w;
  const int64_t channels_per_dg = s.in_channels / s.deform_groups;
  parallel_for(s.in_channels, [&](int64_t c) {
    const int64_t dg = c / channels_per_dg;
    const float* plane = input + c * s.in_height * s.in_width;
    const float* dg_offset = offset + dg * 2 * kernel * positions;
    const float* dg_mask = mask ? mask + dg * kernel * positions : nullptr;
    for (int64_t ky = 0; ky < s.kernel_h; ++ky) {
      for (int64_t kx = 0; kx < s.kernel_w; ++kx) {
        const int64_t k = ky * s.kernel_w + kx;
        const float* off_y = dg_offset + 2 * k * positions;
        const float* off_x = off_y + positions;
        float* col = columns + (c * kernel + k) * positions;
        for (int64_t oy = 0; oy < ho; ++oy) {
          const float base_y = static_cast<float>(oy * s.stride_h - s.pad_h + ky * s.dilation_h);
          for (int64_t ox = 0; ox < wo; ++ox) {
            const int64_t p = oy * wo + ox;
            const float base_x = static_cast<float>(ox * s.stride_w - s.pad_w + kx * s.dilation_w);
            float value = bilinear(plane, s.in_height, s.in_width, base_y + off_y[p], base_x + off_x[p]);
            if (dg_mask) value *= dg_mask[k * positions + p];
            col[p] = value;
          }
        }
      }
    }
  });
}

}  // namespace

const char* check_deform_conv_shape(const DeformConvShape& s) {
  if (s.batch < 0 || s.in_channels <= 0 || s.in_height <= 0 || s.in_width <= 0 || s.out_channels <= 0)
    return "empty input or weight";
  if (s.kernel_h <= 0 || s.kernel_w <= 0) return "kernel size must be positive";
  if (s.stride_h <= 0 || s.stride_w <= 0 || s.dilation_h <= 0 || s.dilation_w <= 0)
    return "stride and dilation must be positive";
  if (s.pad_h < 0 || s.pad_w < 0) return "padding must not be negative";
  if (s.groups <= 0 || s.in_channels % s.groups || s.out_channels % s.groups)
    return "groups must divide the input and output channels";
  if (s.deform_groups <= 0 || s.in_channels % s.deform_groups)
    return "deform_groups must divide the input channels";
  if (s.out_height() <= 0 || s.out_width() <= 0) return "input smaller than the dilated kernel";
  return nullptr;
}

void deform_conv2d_forward(const float* input, const float* offset, const float* mask, const float* weight,
                           const float* bias, float* output, const DeformConvShape& s,
                           const ParallelFor& parallel_for) {
  const int64_t positions = s.out_height() * s.out_width();
  const int64_t kernel = s.kernel_h * s.kernel_w;
  const int64_t cols_per_group = s.in_channels / s.groups * kernel;  // the GEMM's inner size
  const int64_t out_per_group = s.out_channels / s.groups;
  std::vector<float> columns(static_cast<size_t>(s.in_channels * kernel * positions));
  for (int64_t n = 0; n < s.batch; ++n) {
    im2col(input + n * s.in_channels * s.in_height * s.in_width,
           offset + n * s.deform_groups * 2 * kernel * positions,
           mask ? mask + n * s.deform_groups * kernel * positions : nullptr, s, columns.data(), parallel_for);
    float* out = output + n * s.out_channels * positions;
    // out[oc, p] = bias[oc] + sum_k weight[oc, k] * columns[group(oc) * K + k, p]
    parallel_for(s.out_channels, [&](int64_t oc) {
      const int64_t g = oc / out_per_group;
      const float* w = weight + oc * cols_per_group;
      const float* col = columns.data() + g * cols_per_group * positions;
      float* row = out + oc * positions;
      std::fill(row, row + positions, bias ? bias[oc] : 0.f);
      for (int64_t k = 0; k < cols_per_group; ++k) {
        const float wk = w[k];
        const float* c = col + k * positions;
        for (int64_t p = 0; p < positions; ++p) row[p] += wk * c[p];
      }
    });
  }
}

}  // namespace mmdeploy_ops
