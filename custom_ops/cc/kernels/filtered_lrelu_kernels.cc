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
    for (const Tensor* f : {&fu, &fd}) {
      const char* name = f == &fu ? "fu" : "fd";
      OP_REQUIRES(ctx, f->dims() == 1 || f->dims() == 2,
                  errors::InvalidArgument(name, " must be 1-D [taps] or 2-D [height, width], got shape ",
                                          f->shape().DebugString()));
      for (int d = 0; d < f->dims(); ++d) {
        OP_REQUIRES(ctx, f->dim_size(d) >= 1 && f->dim_size(d) <= AFGAN_FLRELU_MAX_TAPS,
                    errors::InvalidArgument(name, " must have 1 to ", AFGAN_FLRELU_MAX_TAPS,
                                            " taps per axis, got shape ", f->shape().DebugString()));
      }
    }
    OP_REQUIRES(ctx, b.dims() == 1 && b.dim_size(0) == x.dim_size(3),
                errors::InvalidArgument("b must have shape [", x.dim_size(3), "] (the channels of x), got ",
                                        b.shape().DebugString()));
    *p = AfganFlreluParams{};
    p->n = static_cast<int>(x.dim_size(0));
    p->h = static_cast<int>(x.dim_size(1));
    p->w = static_cast<int>(x.dim_size(2));
    p->c = static_cast<int>(x.dim_size(3));
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
                errors::InvalidArgument(afgan_flrelu_error(code), " (x ", x.shape().DebugString(), ", up ", up_,
                                        ", down ", down_, ", padding [", padding_[0], ", ", padding_[1], ", ",
                                        padding_[2], ", ", padding_[3], "], fu ", fu.shape().DebugString(), ", fd ",
                                        fd.shape().DebugString(), ")"));
  }

  int up_, down_;
  std::vector<int> padding_;
  float gain_, slope_, clamp_;
  bool flip_filter_;
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
    const Tensor &x = ctx->input(0), &fu = ctx->input(1), &fd = ctx->input(2), &b = ctx->input(3);
    AfganFlreluParams p;
    Setup(ctx, x, fu, fd, b, &p);
    if (!ctx->status().ok()) return;
    Tensor* y = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({p.n, afgan_out_h(p), afgan_out_w(p), p.c}), &y));
    if (p.n == 0) return;
    cpu::Forward(p, fu.flat<float>().data(), fd.flat<float>().data(), x.flat<float>().data(),
                 b.flat<float>().data(), y->flat<float>().data(), ThreadPoolFor(ctx));
  }
};

class FilteredLreluGradCpuOp : public FilteredLreluBase {
 public:
  using FilteredLreluBase::FilteredLreluBase;

  void Compute(OpKernelContext* ctx) override {
    const Tensor &dy = ctx->input(0), &x = ctx->input(1), &fu = ctx->input(2), &fd = ctx->input(3),
                 &b = ctx->input(4);
    AfganFlreluParams p;
    Setup(ctx, x, fu, fd, b, &p);
    if (!ctx->status().ok()) return;
    const TensorShape y_shape({p.n, afgan_out_h(p), afgan_out_w(p), p.c});
    OP_REQUIRES(ctx, dy.shape() == y_shape,
                errors::InvalidArgument("dy must have the output's shape ", y_shape.DebugString(), ", got ",
                                        dy.shape().DebugString()));
    Tensor* dx = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &dx));
    if (p.n == 0) return;
    cpu::Backward(p, fu.flat<float>().data(), fd.flat<float>().data(), dy.flat<float>().data(),
                  x.flat<float>().data(), b.flat<float>().data(), dx->flat<float>().data(), ThreadPoolFor(ctx));
  }
};

REGISTER_KERNEL_BUILDER(Name("AfganFilteredLrelu").Device(::tensorflow::DEVICE_CPU), FilteredLreluCpuOp);
REGISTER_KERNEL_BUILDER(Name("AfganFilteredLreluGrad").Device(::tensorflow::DEVICE_CPU), FilteredLreluGradCpuOp);

#if GOOGLE_CUDA
// ---------------------------------------------------------------------------
// GPU kernels: filters arrive in host memory, everything else on the device; the
// CUDA code runs on the op's stream.

class FilteredLreluGpuOp : public FilteredLreluBase {
 public:
  explicit FilteredLreluGpuOp(OpKernelConstruction* ctx, bool grad) : FilteredLreluBase(ctx), grad_(grad) {}

  void Compute(OpKernelContext* ctx) override {
    const int offset = grad_ ? 1 : 0;
    const Tensor &x = ctx->input(offset), &fu = ctx->input(offset + 1), &fd = ctx->input(offset + 2),
                 &b = ctx->input(offset + 3);
    AfganFlreluParams p;
    Setup(ctx, x, fu, fd, b, &p);
    if (!ctx->status().ok()) return;
    const TensorShape y_shape({p.n, afgan_out_h(p), afgan_out_w(p), p.c});
    if (grad_) {
      OP_REQUIRES(ctx, ctx->input(0).shape() == y_shape,
                  errors::InvalidArgument("dy must have the output's shape ", y_shape.DebugString()));
    }
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, grad_ ? x.shape() : y_shape, &out));
    if (p.n == 0) return;
    auto stream = reinterpret_cast<cudaStream_t>(ctx->eigen_gpu_device().stream());
    const float* fu_host = fu.flat<float>().data();
    const float* fd_host = fd.flat<float>().data();
    int code;
    if (grad_) {
      code = afgan_flrelu_cuda_backward(&p, ctx->input(0).flat<float>().data(), x.flat<float>().data(),
                                        b.flat<float>().data(), fu_host, fd_host, out->flat<float>().data(), stream);
    } else {
      code = afgan_flrelu_cuda_forward(&p, x.flat<float>().data(), b.flat<float>().data(), fu_host, fd_host,
                                       out->flat<float>().data(), stream);
    }
    OP_REQUIRES(ctx, code == 0, errors::Internal("filtered_lrelu CUDA kernel failed: ", afgan_flrelu_error(code),
                                                 " ", afgan_flrelu_cuda_last_error()));
  }

 private:
  bool grad_;
};

class FilteredLreluGpuForward : public FilteredLreluGpuOp {
 public:
  explicit FilteredLreluGpuForward(OpKernelConstruction* ctx) : FilteredLreluGpuOp(ctx, false) {}
};
class FilteredLreluGpuBackward : public FilteredLreluGpuOp {
 public:
  explicit FilteredLreluGpuBackward(OpKernelConstruction* ctx) : FilteredLreluGpuOp(ctx, true) {}
};

REGISTER_KERNEL_BUILDER(
    Name("AfganFilteredLrelu").Device(::tensorflow::DEVICE_GPU).HostMemory("fu").HostMemory("fd"),
    FilteredLreluGpuForward);
REGISTER_KERNEL_BUILDER(
    Name("AfganFilteredLreluGrad").Device(::tensorflow::DEVICE_GPU).HostMemory("fu").HostMemory("fd"),
    FilteredLreluGpuBackward);
#endif  // GOOGLE_CUDA

}  // namespace afgan
