#include "ms_deform_attn.h"

#include <algorithm>
#include <cmath>

namespace mmdeploy_ops {

const char* check_ms_deform_attn(const MSDeformAttnShape& s, const int64_t* spatial_shapes,
                                 const int64_t* level_start_index) {
  int64_t start = 0;
  for (int64_t l = 0; l < s.num_levels; ++l) {
    if (spatial_shapes[2 * l] <= 0 || spatial_shapes[2 * l + 1] <= 0) return "spatial_shapes must be positive";
    if (level_start_index[l] != start) return "level_start_index must be the running sum of H * W of the levels";
    start += spatial_shapes[2 * l] * spatial_shapes[2 * l + 1];
  }
  if (start != s.num_keys) return "the levels' H * W must add up to the value's length";
  return nullptr;
}

void ms_deform_attn_forward(const float* value, const int64_t* spatial_shapes, const int64_t* level_start_index,
                            const float* sampling_locations, const float* attention_weights, float* output,
                            const MSDeformAttnShape& s, const ParallelFor& parallel_for) {
  const int64_t heads = s.num_heads, channels = s.channels;
  const int64_t row = heads * channels;  // stride of one key in value
  const int64_t per_head = s.num_levels * s.num_points;
  parallel_for(s.batch * s.num_queries * heads, [&](int64_t index) {
    const int64_t h = index % heads;
    const int64_t n = index / (heads * s.num_queries);
    const float* loc = sampling_locations + index * per_head * 2;
    const float* weights = attention_weights + index * per_head;
    float* out = output + index * channels;  // [N, Q, heads, C] is [N, Q, heads * C]
    std::fill(out, out + channels, 0.f);
    for (int64_t l = 0; l < s.num_levels; ++l) {
      const int64_t height = spatial_shapes[2 * l], width = spatial_shapes[2 * l + 1];
      const float* level = value + (n * s.num_keys + level_start_index[l]) * row + h * channels;
      for (int64_t p = 0; p < s.num_points; ++p) {
        const int64_t k = l * s.num_points + p;
        const float x = loc[2 * k] * static_cast<float>(width) - 0.5f;
        const float y = loc[2 * k + 1] * static_cast<float>(height) - 0.5f;
        if (!(y > -1.f && x > -1.f && y < static_cast<float>(height) && x < static_cast<float>(width))) continue;
        const int64_t y0 = static_cast<int64_t>(std::floor(y)), x0 = static_cast<int64_t>(std::floor(x));
        const float ly = y - static_cast<float>(y0), lx = x - static_cast<float>(x0);
        const float w = weights[k];
        // the four corners: (dy, dx, bilinear weight); those outside the map add nothing
        const float corner_weight[4] = {(1.f - ly) * (1.f - lx), (1.f - ly) * lx, ly * (1.f - lx), ly * lx};
        for (int corner = 0; corner < 4; ++corner) {
          const int64_t yy = y0 + corner / 2, xx = x0 + corner % 2;
          if (yy < 0 || xx < 0 || yy >= height || xx >= width) continue;
          const float cw = w * corner_weight[corner];
          const float* v = level + (yy * width + xx) * row;
          for (int64_t c = 0; c < channels; ++c) out[c] += cw * v[c];
        }
      }
    }
  });
}

}  // namespace mmdeploy_ops
