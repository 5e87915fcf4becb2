// Multi-scale deformable attention (Deformable DETR), float32, CPU, engine-independent.
//
// Semantics are mmcv's MultiScaleDeformableAttnFunction (and its pure-PyTorch twin
// multi_scale_deformable_attn_pytorch): for each query q, head h, level l and point p, the value map
// of level l is sampled bilinearly at (x * W_l - 0.5, y * H_l - 0.5) (grid_sample, align_corners=False,
// zero padding) and weighted by attention_weights[q, h, l, p]; the sums of the heads are concatenated.
#pragma once

#include <cstdint>

#include "parallel.h"

namespace mmdeploy_ops {

struct MSDeformAttnShape {
  int64_t batch, num_keys, num_heads, channels;  // value [N, S, heads, C]
  int64_t num_levels, num_queries, num_points;   // sampling_locations [N, Q, heads, L, P, 2]
};

// Returns nullptr when the level shapes are consistent with num_keys, else a message.
const char* check_ms_deform_attn(const MSDeformAttnShape& s, const int64_t* spatial_shapes,
                                 const int64_t* level_start_index);

// value [N, S, heads, C]; spatial_shapes [L, 2] as (H, W); level_start_index [L];
// sampling_locations [N, Q, heads, L, P, 2] as (x, y) in [0, 1]; attention_weights [N, Q, heads, L, P];
// output [N, Q, heads * C].
void ms_deform_attn_forward(const float* value, const int64_t* spatial_shapes, const int64_t* level_start_index,
                            const float* sampling_locations, const float* attention_weights, float* output,
                            const MSDeformAttnShape& s, const ParallelFor& parallel_for = serial_for);

}  // namespace mmdeploy_ops
