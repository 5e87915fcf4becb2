// How a kernel spreads a loop over threads without knowing the engine: the engine passes a runner
// (ONNX Runtime: its intra-op thread pool, so intra_op_num_threads applies); the default runs in turn.
#pragma once

#include <cstdint>
#include <functional>

namespace mmdeploy_ops {

using LoopBody = std::function<void(int64_t)>;
// Calls body(i) once for every i in [0, n), in any order, possibly concurrently.
using ParallelFor = std::function<void(int64_t n, const LoopBody& body)>;

inline void serial_for(int64_t n, const LoopBody& body) {
  for (int64_t i = 0; i < n; ++i) body(i);
}

}  // namespace mmdeploy_ops
