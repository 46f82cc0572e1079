// TensorFlow kernels of AfganFilteredLrelu / AfganFilteredLreluGrad: argument checks,
// the CPU kernels (which call the TensorFlow-free loops of filtered_lrelu_cpu.h on the
// intra-op thread pool) and the GPU kernels (which call the CUDA entry points of
// filtered_lrelu_cuda.h on the op's stream).
//
// This file includes TensorFlow headers, so it is always compiled for the x86-64
// baseline: the instruction-set-specific code lives in filtered_lrelu_cpu.cc.

#define EIGEN_USE_THREADS
#if GOOGLE_CUDA
#define EIGEN_USE_GPU
#endif

#include <cmath>
#include <cstring>
#include <cstdint>
#include <functional>
#include <limits>
#include <vector>

#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/tensor_shape.h"
#include "filtered_lrelu.h"
#include "filtered_lrelu_cpu.h"

#if GOOGLE_CUDA
#include "filtered_lrelu_cuda.h"
#endif

namespace afgan {

using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;
namespace errors = ::tensorflow::errors;

// ---------------------------------------------------------------------------
// Shared argument handling of the forward and gradient kernels (CPU and GPU).

class FilteredLreluBase : public OpKernel {
 public:
  explicit FilteredLreluBase(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("up", &up_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("down", &down_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("padding", &padding_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("gain", &gain_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("slope", &slope_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("clamp", &clamp_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("flip_filter", &flip_filter_));
    OP_REQUIRES(ctx, up_ >= 1 && up_ <= AFGAN_FLRELU_MAX_FACTOR,
                errors::InvalidArgument("up must be in [1, ", AFGAN_FLRELU_MAX_FACTOR, "], got ", up_));
    OP_REQUIRES(ctx, down_ >= 1 && down_ <= AFGAN_FLRELU_MAX_FACTOR,
                errors::InvalidArgument("down must be in [1, ", AFGAN_FLRELU_MAX_FACTOR, "], got ", down_));
    OP_REQUIRES(ctx, padding_.size() == 4,
                errors::InvalidArgument("padding must be [x0, x1, y0, y1], got ", padding_.size(), " values"));
    for (int v : padding_) {
      OP_REQUIRES(ctx, v >= -AFGAN_FLRELU_MAX_DIM && v <= AFGAN_FLRELU_MAX_DIM,
                  errors::InvalidArgument("padding values must be in [-", AFGAN_FLRELU_MAX_DIM, ", ",
                                          AFGAN_FLRELU_MAX_DIM, "], got ", v));
    }
    OP_REQUIRES(ctx, gain_ > 0.f && std::isfinite(gain_),
                errors::InvalidArgument("gain must be finite and > 0, got ", gain_));
    OP_REQUIRES(ctx, slope_ >= 0.f && std::isfinite(slope_),
                errors::InvalidArgument("slope must be finite and >= 0, got ", slope_));
    OP_REQUIRES(ctx, !std::isnan(clamp_), errors::InvalidArgument("clamp must not be NaN (< 0 means none)"));
    if (ctx->HasAttr("write_signs")) OP_REQUIRES_OK(ctx, ctx->GetAttr("write_signs", &write_signs_));
  }

 protected:
  // Validates x, fu, fd, b (host-side shapes, checked in 64-bit before they are narrowed
  // to the kernels' 32-bit fields) and fills the parameters; on bad input the context's
  // status names the argument.
  void Setup(OpKernelContext* ctx, const Tensor& x, const Tensor& fu, const Tensor& fd, const Tensor& b,
             AfganFlreluParams* p) {
    OP_REQUIRES(ctx, x.dims() == 4,
                errors::InvalidArgument("x must be 4-D NHWC [batch, height, width, channels], got shape ",
                                        x.shape().DebugString()));
    OP_REQUIRES(ctx, x.dim_size(1) >= 1 && x.dim_size(2) >= 1 && x.dim_size(3) >= 1 &&
                         x.dim_size(1) <= AFGAN_FLRELU_MAX_DIM && x.dim_size(2) <= AFGAN_FLRELU_MAX_DIM &&
                         x.NumElements() <= AFGAN_FLRELU_MAX_ELEMENTS,
                errors::InvalidArgument("x must have height and width in [1, ", AFGAN_FLRELU_MAX_DIM,
                                        "], channels >= 1 and at most ", AFGAN_FLRELU_MAX_ELEMENTS,
                                        " elements, got shape ", x.shape().DebugString()));
    OP_REQUIRES(ctx, b.dims() == 1 && b.dim_size(0) == x.dim_size(3),
                errors::InvalidArgument("b must have shape [", x.dim_size(3), "] (the channels of x), got ",
                                        b.shape().DebugString()));
    if (!CheckFilters(ctx, fu, fd)) return;
    SetupParams(ctx, x.dim_size(0), x.dim_size(1), x.dim_size(2), x.dim_size(3), fu, fd, p);
  }

  // Validates dy, signs, fu, fd of the gradient and fills the parameters (x's height and width
  // from the signs' intermediate size).
  void SetupGrad(OpKernelContext* ctx, const Tensor& dy, const Tensor& signs, const Tensor& fu, const Tensor& fd,
                 AfganFlreluParams* p) {
    OP_REQUIRES(ctx, dy.dims() == 4 && dy.dim_size(3) >= 1 && dy.NumElements() <= AFGAN_FLRELU_MAX_ELEMENTS,
                errors::InvalidArgument("dy must be 4-D NHWC [batch, height, width, channels], got shape ",
                                        dy.shape().DebugString()));
    OP_REQUIRES(ctx, signs.dims() == 4 && signs.dim_size(0) == dy.dim_size(0),
                errors::InvalidArgument("signs must be the [batch, tmp_h, tmp_w, bytes] signs of the forward ",
                                        "(run with write_signs), got shape ", signs.shape().DebugString(),
                                        " for dy ", dy.shape().DebugString()));
    if (!CheckFilters(ctx, fu, fd)) return;
    const int64_t h = afgan_in_len_from_tmp(signs.dim_size(1), up_, padding_[2], padding_[3],
                                            fu.dim_size(0));
    const int64_t w = afgan_in_len_from_tmp(signs.dim_size(2), up_, padding_[0], padding_[1],
                                            fu.dim_size(fu.dims() - 1));
    OP_REQUIRES(ctx, h >= 1 && w >= 1 && h <= AFGAN_FLRELU_MAX_DIM && w <= AFGAN_FLRELU_MAX_DIM,
                errors::InvalidArgument("signs shape ", signs.shape().DebugString(),
                                        " is not the intermediate of any input for up ", up_, " and fu ",
                                        fu.shape().DebugString()));
    OP_REQUIRES(ctx, dy.dim_size(0) * h * w * dy.dim_size(3) <= AFGAN_FLRELU_MAX_ELEMENTS,
                errors::InvalidArgument("dx would have more than ", AFGAN_FLRELU_MAX_ELEMENTS, " elements"));
    SetupParams(ctx, dy.dim_size(0), h, w, dy.dim_size(3), fu, fd, p);
    if (!ctx->status().ok()) return;
    const TensorShape y_shape({p->n, afgan_out_h(*p), afgan_out_w(*p), p->c});
    OP_REQUIRES(ctx, dy.shape() == y_shape,
                errors::InvalidArgument("dy must have the output's shape ", y_shape.DebugString(), ", got ",
                                        dy.shape().DebugString()));
    OP_REQUIRES(ctx, signs.dim_size(3) == 4 * afgan_sign_words(*p),
                errors::InvalidArgument("signs must have ", 4 * afgan_sign_words(*p), " bytes per position for ",
                                        p->c, " channels, got shape ", signs.shape().DebugString()));
  }

  // Checks the forward's inputs and allocates y and the signs (zeroed here when zero_signs_on_host;
  // NULL without write_signs). False when there is nothing to compute: an error, or an empty batch.
  bool PrepareForward(OpKernelContext* ctx, bool zero_signs_on_host, AfganFlreluParams* p, Tensor** y,
                      uint8_t** signs) {
    Setup(ctx, ctx->input(0), ctx->input(1), ctx->input(2), ctx->input(3), p);
    if (!ctx->status().ok()) return false;
    const ::tensorflow::Status status =
        ctx->allocate_output(0, TensorShape({p->n, afgan_out_h(*p), afgan_out_w(*p), p->c}), y);
    if (!status.ok()) {
      ctx->SetStatus(status);
      return false;
    }
    *signs = AllocateSigns(ctx, *p, zero_signs_on_host);
    return ctx->status().ok() && p->n > 0;
  }

  // Checks the gradient's inputs (dy, signs, fu, fd) and allocates dx; false when there is nothing to compute.
  bool PrepareGrad(OpKernelContext* ctx, AfganFlreluParams* p, Tensor** dx) {
    SetupGrad(ctx, ctx->input(0), ctx->input(1), ctx->input(2), ctx->input(3), p);
    if (!ctx->status().ok()) return false;
    const ::tensorflow::Status status = ctx->allocate_output(0, TensorShape({p->n, p->h, p->w, p->c}), dx);
    if (!status.ok()) {
      ctx->SetStatus(status);
      return false;
    }
    return p->n > 0;
  }

 private:
  // The forward's signs output: afgan_sign_bytes zeroed bytes with write_signs, else empty.
  // Returns its data (NULL when empty or on error).
  uint8_t* AllocateSigns(OpKernelContext* ctx, const AfganFlreluParams& p, bool zero_on_host) {
    Tensor* signs = nullptr;
    if (write_signs_) {
      const int code = afgan_check_signs(p);
      if (code != AFGAN_FLRELU_OK) {
        ctx->CtxFailure(errors::InvalidArgument(afgan_flrelu_error(code), " (", afgan_sign_bytes(p),
                                                " bytes; write_signs is set when a gradient tape records the op)"));
        return nullptr;
      }
    }
    const TensorShape shape = write_signs_ ? TensorShape({p.n, afgan_tmp_h(p), afgan_tmp_w(p), 4 * afgan_sign_words(p)})
                                           : TensorShape({0});
    const ::tensorflow::Status status = ctx->allocate_output(1, shape, &signs);
    if (!status.ok()) {
      ctx->SetStatus(status);
      return nullptr;
    }
    if (!write_signs_ || signs->NumElements() == 0) return nullptr;
    uint8_t* data = signs->flat<uint8_t>().data();
    if (zero_on_host) std::memset(data, 0, signs->NumElements());
    return data;
  }

  bool CheckFilter(OpKernelContext* ctx, const Tensor& f, const char* name) {
    if (f.dims() != 1 && f.dims() != 2) {
      ctx->CtxFailure(errors::InvalidArgument(name, " must be 1-D [taps] or 2-D [height, width], got shape ",
                                              f.shape().DebugString()));
      return false;
    }
    for (int d = 0; d < f.dims(); ++d) {
      if (f.dim_size(d) < 1 || f.dim_size(d) > AFGAN_FLRELU_MAX_TAPS) {
        ctx->CtxFailure(errors::InvalidArgument(name, " must have 1 to ", AFGAN_FLRELU_MAX_TAPS,
                                                " taps per axis, got shape ", f.shape().DebugString()));
        return false;
      }
    }
    return true;
  }
  bool CheckFilters(OpKernelContext* ctx, const Tensor& fu, const Tensor& fd) {
    return CheckFilter(ctx, fu, "fu") && CheckFilter(ctx, fd, "fd");
  }

  // Fills the parameters for x of shape [n, h, w, c] (each checked against the limits, and the filters,
  // by the caller).
  void SetupParams(OpKernelContext* ctx, int64_t n, int64_t h, int64_t w, int64_t c, const Tensor& fu,
                   const Tensor& fd, AfganFlreluParams* p) {
    *p = AfganFlreluParams{};
    p->n = static_cast<int>(n);
    p->h = static_cast<int>(h);
    p->w = static_cast<int>(w);
    p->c = static_cast<int>(c);
    p->up = up_;
    p->down = down_;
    p->px0 = padding_[0];
    p->px1 = padding_[1];
    p->py0 = padding_[2];
    p->py1 = padding_[3];
    p->gain = gain_;
    p->slope = slope_;
    p->clamp = clamp_;
    p->flip_filter = flip_filter_ ? 1 : 0;
    p->fu_2d = fu.dims() == 2;
    p->fu_w = static_cast<int>(fu.dim_size(fu.dims() - 1));
    p->fu_h = static_cast<int>(fu.dim_size(0));
    p->fd_2d = fd.dims() == 2;
    p->fd_w = static_cast<int>(fd.dim_size(fd.dims() - 1));
    p->fd_h = static_cast<int>(fd.dim_size(0));
    const int code = afgan_check_params(*p);
    OP_REQUIRES(ctx, code == AFGAN_FLRELU_OK,
                errors::InvalidArgument(afgan_flrelu_error(code), " (x [", n, ",", h, ",", w, ",", c, "], up ", up_,
                                        ", down ", down_, ", padding [", padding_[0], ", ", padding_[1], ", ",
                                        padding_[2], ", ", padding_[3], "], fu ", fu.shape().DebugString(), ", fd ",
                                        fd.shape().DebugString(), ")"));
  }

 protected:
  int up_, down_;
  std::vector<int> padding_;
  float gain_, slope_, clamp_;
  bool flip_filter_;
  bool write_signs_ = false;   // Forward only.
};

// The intra-op thread pool as the CPU kernels' parallel-for.
cpu::ParallelFor ThreadPoolFor(OpKernelContext* ctx) {
  auto* pool = ctx->device()->tensorflow_cpu_worker_threads()->workers;
  return [pool](int64_t units, int64_t cost, const std::function<void(int64_t, int64_t)>& fn) {
    pool->ParallelFor(units, cost, fn);
  };
}

class FilteredLreluCpuOp : public FilteredLreluBase {
 public:
  using FilteredLreluBase::FilteredLreluBase;

  void Compute(OpKernelContext* ctx) override {
    AfganFlreluParams p;
    Tensor* y = nullptr;
    uint8_t* signs = nullptr;
    if (!PrepareForward(ctx, true, &p, &y, &signs)) return;
    cpu::Forward(p, ctx->input(1).flat<float>().data(), ctx->input(2).flat<float>().data(),
                 ctx->input(0).flat<float>().data(), ctx->input(3).flat<float>().data(), y->flat<float>().data(),
                 signs, ThreadPoolFor(ctx));
  }
};

class FilteredLreluGradCpuOp : public FilteredLreluBase {
 public:
  using FilteredLreluBase::FilteredLreluBase;

  void Compute(OpKernelContext* ctx) override {
    AfganFlreluParams p;
    Tensor* dx = nullptr;
    if (!PrepareGrad(ctx, &p, &dx)) return;
    cpu::Backward(p, ctx->input(2).flat<float>().data(), ctx->input(3).flat<float>().data(),
                  ctx->input(0).flat<float>().data(), ctx->input(1).flat<uint8_t>().data(), dx->flat<float>().data(),
                  ThreadPoolFor(ctx));
  }
};

REGISTER_KERNEL_BUILDER(Name("AfganFilteredLrelu").Device(::tensorflow::DEVICE_CPU), FilteredLreluCpuOp);
REGISTER_KERNEL_BUILDER(Name("AfganFilteredLreluGrad").Device(::tensorflow::DEVICE_CPU), FilteredLreluGradCpuOp);

#if GOOGLE_CUDA
// ---------------------------------------------------------------------------
// GPU kernels: filters arrive in host memory, everything else on the device; the
// CUDA code runs on the op's stream.

// The status of a CUDA entry point's result.
void CheckCudaCall(OpKernelContext* ctx, int code) {
  OP_REQUIRES(ctx, code == 0, errors::Internal("filtered_lrelu CUDA kernel failed: ", afgan_flrelu_error(code), " ",
                                               afgan_flrelu_cuda_last_error()));
}

class FilteredLreluGpuForward : public FilteredLreluBase {
 public:
  using FilteredLreluBase::FilteredLreluBase;

  void Compute(OpKernelContext* ctx) override {
    AfganFlreluParams p;
    Tensor* y = nullptr;
    uint8_t* signs = nullptr;
    if (!PrepareForward(ctx, false, &p, &y, &signs)) return;   // The CUDA entry point clears the signs.
    auto stream = reinterpret_cast<cudaStream_t>(ctx->eigen_gpu_device().stream());
    const int code = afgan_flrelu_cuda_forward(&p, ctx->input(0).flat<float>().data(),
                                               ctx->input(3).flat<float>().data(), ctx->input(1).flat<float>().data(),
                                               ctx->input(2).flat<float>().data(), y->flat<float>().data(), signs,
                                               stream);
    CheckCudaCall(ctx, code);
  }
};

class FilteredLreluGpuBackward : public FilteredLreluBase {
 public:
  using FilteredLreluBase::FilteredLreluBase;

  void Compute(OpKernelContext* ctx) override {
    AfganFlreluParams p;
    Tensor* dx = nullptr;
    if (!PrepareGrad(ctx, &p, &dx)) return;
    auto stream = reinterpret_cast<cudaStream_t>(ctx->eigen_gpu_device().stream());
    const int code = afgan_flrelu_cuda_backward(&p, ctx->input(0).flat<float>().data(),
                                                ctx->input(1).flat<uint8_t>().data(), ctx->input(2).flat<float>().data(),
                                                ctx->input(3).flat<float>().data(), dx->flat<float>().data(), stream);
    CheckCudaCall(ctx, code);
  }
};

REGISTER_KERNEL_BUILDER(
    Name("AfganFilteredLrelu").Device(::tensorflow::DEVICE_GPU).HostMemory("fu").HostMemory("fd"),
    FilteredLreluGpuForward);
REGISTER_KERNEL_BUILDER(
    Name("AfganFilteredLreluGrad").Device(::tensorflow::DEVICE_GPU).HostMemory("fu").HostMemory("fd"),
    FilteredLreluGpuBackward);
#endif  // GOOGLE_CUDA

}  // namespace afgan
