// CPU kernels of the filtered leaky ReLU, without TensorFlow.
//
// The hot loops (filtered_lrelu_cpu_impl.h) are compiled once per x86-64 instruction
// set: AVX-512 (F, VL, BW, DQ), AVX2 + FMA, and the x86-64 baseline (SSE2). The
// instruction set is chosen once, at run time, from what the CPU supports, so one
// library runs on any x86-64 CPU (and on other architectures through the baseline
// copy). `AFGAN_TF_CPU_ISA=baseline|avx2|avx512` selects a lower one (tests use it to
// check every copy that the CPU can run); asking for more than the CPU has falls back to
// the best it supports.
//
// The caller validates the parameters first (afgan_check_params in filtered_lrelu.h)
// and supplies the parallel-for (the TensorFlow kernel passes its intra-op thread pool).

#ifndef AFGAN_FILTERED_LRELU_CPU_H_
#define AFGAN_FILTERED_LRELU_CPU_H_

#include <cstdint>
#include <functional>

#include "filtered_lrelu.h"

namespace afgan {
namespace cpu {

// parallel_for(units, cost_per_unit, fn) runs fn(begin, end) over [0, units) in chunks.
using ParallelFor =
    std::function<void(int64_t units, int64_t cost_per_unit, const std::function<void(int64_t, int64_t)>& fn)>;

enum class Isa { kBaseline = 0, kAvx2 = 1, kAvx512 = 2 };

// The best instruction set this CPU (and its operating system) supports.
Isa SupportedIsa();
// The one the kernels use: SupportedIsa(), lowered by $AFGAN_TF_CPU_ISA. Read once.
Isa SelectedIsa();
const char* IsaName(Isa isa);

// y = filtered_lrelu(x); fu, fd are the raw filters (afgan_fu_count / afgan_fd_count floats).
// With `signs` (afgan_sign_bytes, zeroed by the caller, 4-byte aligned; NULL: none), also
// writes the intermediate's signs for Backward.
void Forward(const AfganFlreluParams& p, const float* fu, const float* fd, const float* x, const float* b, float* y,
             uint8_t* signs, const ParallelFor& parallel_for);
// dx for the upstream gradient dy from the forward's signs (the bias gradient is the sum of dx
// over N, H, W).
void Backward(const AfganFlreluParams& p, const float* fu, const float* fd, const float* dy, const uint8_t* signs,
              float* dx, const ParallelFor& parallel_for);

}  // namespace cpu
}  // namespace afgan

// For ctypes: the name of the instruction set the CPU kernels use ("avx512", "avx2", "baseline").
extern "C" const char* afgan_flrelu_cpu_isa(void);

#endif  // AFGAN_FILTERED_LRELU_CPU_H_
