// ONNX Runtime custom-op library: the kernels of csrc/ops/common behind ORT's C/C++ custom-op API.
//
// Loaded with SessionOptions.register_custom_ops_library(path); ORT then calls RegisterCustomOps,
// which adds the ops to the session under the domains 'mmcv' (the names mmcv's own symbolics used)
// and 'mmdeploy' (graphs of the original MMDeploy). Built against ORT_API_VERSION of the headers it
// was compiled with; it asks the runtime for that API version, so it runs on that runtime or newer.
#define ORT_API_MANUAL_INIT
#include <onnxruntime_cxx_api.h>
#undef ORT_API_MANUAL_INIT

#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "../common/deform_conv.h"
#include "../common/ms_deform_attn.h"

namespace {

using mmdeploy_ops::DeformConvShape;
using mmdeploy_ops::MSDeformAttnShape;

// A runner that spreads a kernel's loop over the session's intra-op thread pool.
mmdeploy_ops::ParallelFor ort_parallel_for(const Ort::KernelContext& context) {
  return [context](int64_t n, const mmdeploy_ops::LoopBody& body) {
    if (n <= 0) return;
    auto trampoline = [](void* data, size_t i) { (*static_cast<const mmdeploy_ops::LoopBody*>(data))(i); };
    context.ParallelFor(trampoline, static_cast<size_t>(n), 0, const_cast<mmdeploy_ops::LoopBody*>(&body));
  };
}

std::vector<int64_t> pair_attribute(const Ort::ConstKernelInfo& info, const char* name, int64_t fallback) {
  std::vector<int64_t> values;
  try {
    values = info.GetAttributes<int64_t>(name);
  } catch (const Ort::Exception&) {
    return {fallback, fallback};
  }
  if (values.size() == 1) values.push_back(values[0]);
  if (values.size() != 2) throw std::invalid_argument(std::string("attribute ") + name + " must have 1 or 2 values");
  return values;
}

int64_t int_attribute(const Ort::ConstKernelInfo& info, const char* name, int64_t fallback) {
  try {
    return info.GetAttribute<int64_t>(name);
  } catch (const Ort::Exception&) {
    return fallback;
  }
}

std::vector<int64_t> shape_of(const Ort::ConstValue& value) { return value.GetTensorTypeAndShapeInfo().GetShape(); }

void require(bool condition, const std::string& op, const std::string& message) {
  if (!condition) throw std::invalid_argument(op + ": " + message);
}

// Runs f and turns an exception into an ORT status, so no C++ exception crosses the C API.
template <typename F>
OrtStatusPtr guarded(F&& f) {
  try {
    f();
    return nullptr;
  } catch (const std::exception& e) {
    return Ort::GetApi().CreateStatus(ORT_INVALID_ARGUMENT, e.what());
  }
}

// ---- deformable convolution (v1 and v2) ----------------------------------------------------------

struct DeformConvKernel {
  std::string op;
  bool modulated;
  std::vector<int64_t> stride, padding, dilation;
  int64_t groups, deform_groups;

  DeformConvKernel(const OrtKernelInfo* raw, bool is_modulated, const char* name) : op(name), modulated(is_modulated) {
    Ort::ConstKernelInfo info(raw);
    stride = pair_attribute(info, "stride", 1);
    padding = pair_attribute(info, "padding", 0);
    dilation = pair_attribute(info, "dilation", 1);
    groups = int_attribute(info, "groups", 1);
    deform_groups = int_attribute(info, "deform_groups", 1);
    require(modulated || int_attribute(info, "bias", 0) == 0, op,
            "bias=1 is not supported (mmcv's DeformConv2d has none)");
  }

  OrtStatusPtr ComputeV2(OrtKernelContext* raw) {
    return guarded([&] { Compute(raw); });
  }

  void Compute(OrtKernelContext* raw) {
    Ort::KernelContext context(raw);
    const size_t weight_index = modulated ? 3 : 2;
    auto input = context.GetInput(0), offset = context.GetInput(1), weight = context.GetInput(weight_index);
    const auto in_shape = shape_of(input), offset_shape = shape_of(offset), w_shape = shape_of(weight);
    require(in_shape.size() == 4 && offset_shape.size() == 4 && w_shape.size() == 4, op,
            "input, offset and weight must be 4-D");
    DeformConvShape s{in_shape[0], in_shape[1], in_shape[2], in_shape[3], w_shape[0], w_shape[2], w_shape[3],
                      stride[0], stride[1], padding[0], padding[1], dilation[0], dilation[1], groups, deform_groups};
    if (const char* problem = mmdeploy_ops::check_deform_conv_shape(s)) require(false, op, problem);
    require(w_shape[1] * groups == in_shape[1], op, "weight's second axis must be channels / groups");
    const int64_t ho = s.out_height(), wo = s.out_width(), kernel = s.kernel_h * s.kernel_w;
    require(offset_shape == std::vector<int64_t>{s.batch, deform_groups * 2 * kernel, ho, wo}, op,
            "offset must be [N, deform_groups * 2 * kh * kw, H_out, W_out]");
    const float* mask = nullptr;
    const float* bias = nullptr;
    if (modulated) {
      auto mask_value = context.GetInput(2);
      require(shape_of(mask_value) == std::vector<int64_t>{s.batch, deform_groups * kernel, ho, wo}, op,
              "mask must be [N, deform_groups * kh * kw, H_out, W_out]");
      mask = mask_value.GetTensorData<float>();
      if (context.GetInputCount() > 4) {
        auto bias_value = context.GetInput(4);
        if (bias_value) {
          require(shape_of(bias_value) == std::vector<int64_t>{s.out_channels}, op, "bias must be [C_out]");
          bias = bias_value.GetTensorData<float>();
        }
      }
    }
    auto output = context.GetOutput(0, {s.batch, s.out_channels, ho, wo});
    mmdeploy_ops::deform_conv2d_forward(input.GetTensorData<float>(), offset.GetTensorData<float>(), mask,
                                        weight.GetTensorData<float>(), bias, output.GetTensorMutableData<float>(), s,
                                        ort_parallel_for(context));
  }
};

template <bool Modulated>
struct DeformConvOp : Ort::CustomOpBase<DeformConvOp<Modulated>, DeformConvKernel, true> {
  OrtStatusPtr CreateKernelV2(const OrtApi&, const OrtKernelInfo* info, void** kernel) const {
    return guarded([&] { *kernel = new DeformConvKernel(info, Modulated, GetName()); });
  }
  const char* GetName() const { return Modulated ? "MMCVModulatedDeformConv2d" : "MMCVDeformConv2d"; }
  const char* GetExecutionProviderType() const { return "CPUExecutionProvider"; }
  size_t GetInputTypeCount() const { return Modulated ? 5 : 3; }
  ONNXTensorElementDataType GetInputType(size_t) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; }
  OrtCustomOpInputOutputCharacteristic GetInputCharacteristic(size_t index) const {
    return Modulated && index == 4 ? INPUT_OUTPUT_OPTIONAL : INPUT_OUTPUT_REQUIRED;  // bias
  }
  size_t GetOutputTypeCount() const { return 1; }
  ONNXTensorElementDataType GetOutputType(size_t) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; }
};

// ---- multi-scale deformable attention -----------------------------------------------------------

struct MSDeformAttnKernel {
  static constexpr const char* op = "MMCVMultiScaleDeformableAttention";

  OrtStatusPtr ComputeV2(OrtKernelContext* raw) {
    return guarded([&] { Compute(raw); });
  }

  void Compute(OrtKernelContext* raw) {
    Ort::KernelContext context(raw);
    auto value = context.GetInput(0), shapes = context.GetInput(1), starts = context.GetInput(2);
    auto locations = context.GetInput(3), weights = context.GetInput(4);
    const auto v = shape_of(value), loc = shape_of(locations), w = shape_of(weights);
    require(v.size() == 4, op, "value must be [N, S, heads, C]");
    require(loc.size() == 6 && loc[5] == 2, op, "sampling_locations must be [N, Q, heads, L, P, 2]");
    MSDeformAttnShape s{v[0], v[1], v[2], v[3], loc[3], loc[1], loc[4]};
    require(loc[0] == s.batch && loc[2] == s.num_heads, op, "sampling_locations disagree with value on N or heads");
    require(w == std::vector<int64_t>(loc.begin(), loc.end() - 1), op,
            "attention_weights must be [N, Q, heads, L, P]");
    require(shape_of(shapes) == std::vector<int64_t>{s.num_levels, 2}, op, "spatial_shapes must be [L, 2]");
    require(shape_of(starts) == std::vector<int64_t>{s.num_levels}, op, "level_start_index must be [L]");
    const int64_t* spatial = shapes.GetTensorData<int64_t>();
    const int64_t* start = starts.GetTensorData<int64_t>();
    if (const char* problem = mmdeploy_ops::check_ms_deform_attn(s, spatial, start)) require(false, op, problem);
    auto output = context.GetOutput(0, {s.batch, s.num_queries, s.num_heads * s.channels});
    mmdeploy_ops::ms_deform_attn_forward(value.GetTensorData<float>(), spatial, start,
                                         locations.GetTensorData<float>(), weights.GetTensorData<float>(),
                                         output.GetTensorMutableData<float>(), s, ort_parallel_for(context));
  }
};

struct MSDeformAttnOp : Ort::CustomOpBase<MSDeformAttnOp, MSDeformAttnKernel, true> {
  OrtStatusPtr CreateKernelV2(const OrtApi&, const OrtKernelInfo*, void** kernel) const {
    return guarded([&] { *kernel = new MSDeformAttnKernel(); });
  }
  const char* GetName() const { return MSDeformAttnKernel::op; }
  const char* GetExecutionProviderType() const { return "CPUExecutionProvider"; }
  size_t GetInputTypeCount() const { return 5; }
  ONNXTensorElementDataType GetInputType(size_t index) const {
    return index == 1 || index == 2 ? ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64 : ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
  }
  size_t GetOutputTypeCount() const { return 1; }
  ONNXTensorElementDataType GetOutputType(size_t) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; }
};

// ORT keeps pointers to the ops and domains: they live as long as the library.
const DeformConvOp<true> modulated_deform_conv_op;
const DeformConvOp<false> deform_conv_op;
const MSDeformAttnOp ms_deform_attn_op;
std::mutex domains_mutex;
std::vector<Ort::CustomOpDomain> domains;

}  // namespace

#define MMDEPLOY_STR_(x) #x
#define MMDEPLOY_STR(x) MMDEPLOY_STR_(x)

#if defined(_WIN32)
#define MMDEPLOY_OPS_EXPORT __declspec(dllexport)
#else
#define MMDEPLOY_OPS_EXPORT __attribute__((visibility("default")))
#endif

extern "C" MMDEPLOY_OPS_EXPORT OrtStatus* ORT_API_CALL RegisterCustomOps(OrtSessionOptions* options,
                                                                          const OrtApiBase* api) {
  const OrtApi* ort = api->GetApi(ORT_API_VERSION);
  if (ort == nullptr) {  // a runtime older than the headers; API 1's CreateStatus exists in every runtime
    return api->GetApi(1)->CreateStatus(ORT_FAIL,
                                        "mmdeploy's custom ops need an ONNX Runtime at least as new as the headers "
                                        "they were built with (ORT_API_VERSION " MMDEPLOY_STR(ORT_API_VERSION) ")");
  }
  Ort::InitApi(ort);
  return guarded([&] {
    std::lock_guard<std::mutex> lock(domains_mutex);
    Ort::UnownedSessionOptions session_options(options);
    for (const char* name : {"mmcv", "mmdeploy"}) {
      Ort::CustomOpDomain domain(name);
      domain.Add(&modulated_deform_conv_op);
      domain.Add(&deform_conv_op);
      domain.Add(&ms_deform_attn_op);
      session_options.Add(domain);
      domains.push_back(std::move(domain));
    }
  });
}
