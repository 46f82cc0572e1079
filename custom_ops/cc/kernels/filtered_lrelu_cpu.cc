// CPU kernels of the filtered leaky ReLU: one copy of the hot loops per instruction set
// and the run-time dispatch between them (see filtered_lrelu_cpu.h).
//
// This file must not include TensorFlow headers. The build compiles it for the x86-64
// baseline like every other file; only the functions inside the `#pragma GCC target`
// regions below use newer instructions, and they run only after the CPU was checked
// for them.

#include "filtered_lrelu_cpu.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "filtered_lrelu.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>   // GCC's intrinsics carry their own target attributes: usable in the regions below.
#endif

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__) && !defined(__clang__)
#define AFGAN_X86_DISPATCH 1
#else
#define AFGAN_X86_DISPATCH 0   // Other compilers / architectures: the baseline copy only.
#endif

namespace afgan {
namespace cpu {

#if AFGAN_X86_DISPATCH
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx2,avx,fma,f16c,bmi,bmi2,lzcnt,popcnt")
namespace isa_avx512 {
namespace {
#define AFGAN_CPU_ISA 2
#include "filtered_lrelu_cpu_impl.h"
#undef AFGAN_CPU_ISA
}  // namespace
}  // namespace isa_avx512
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,avx,fma,f16c,bmi,bmi2,lzcnt,popcnt")
namespace isa_avx2 {
namespace {
#define AFGAN_CPU_ISA 1
#include "filtered_lrelu_cpu_impl.h"
#undef AFGAN_CPU_ISA
}  // namespace
}  // namespace isa_avx2
#pragma GCC pop_options
#endif  // AFGAN_X86_DISPATCH

namespace isa_baseline {
namespace {
#define AFGAN_CPU_ISA 0
#include "filtered_lrelu_cpu_impl.h"
#undef AFGAN_CPU_ISA
}  // namespace
}  // namespace isa_baseline

Isa SupportedIsa() {
#if AFGAN_X86_DISPATCH
  __builtin_cpu_init();   // libgcc also checks that the OS saves the AVX / AVX-512 registers.
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
      __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2")) {
    return Isa::kAvx512;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi") &&
      __builtin_cpu_supports("bmi2")) {
    return Isa::kAvx2;
  }
#endif
  return Isa::kBaseline;
}

const char* IsaName(Isa isa) {
  switch (isa) {
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx2: return "avx2";
    default: return "baseline";
  }
}

Isa SelectedIsa() {
  static const Isa selected = [] {
    Isa isa = SupportedIsa();
    const char* env = std::getenv("AFGAN_TF_CPU_ISA");
    if (env != nullptr) {
      for (Isa lower : {Isa::kBaseline, Isa::kAvx2}) {
        if (std::strcmp(env, IsaName(lower)) == 0 && lower < isa) isa = lower;
      }
    }
    return isa;
  }();
  return selected;
}

void Forward(const AfganFlreluParams& p, const float* fu, const float* fd, const float* x, const float* b, float* y,
             uint8_t* signs, const ParallelFor& parallel_for) {
  switch (SelectedIsa()) {
#if AFGAN_X86_DISPATCH
    case Isa::kAvx512: return isa_avx512::Forward(p, fu, fd, x, b, y, signs, parallel_for);
    case Isa::kAvx2: return isa_avx2::Forward(p, fu, fd, x, b, y, signs, parallel_for);
#endif
    default: return isa_baseline::Forward(p, fu, fd, x, b, y, signs, parallel_for);
  }
}

void Backward(const AfganFlreluParams& p, const float* fu, const float* fd, const float* dy, const uint8_t* signs,
              float* dx, const ParallelFor& parallel_for) {
  switch (SelectedIsa()) {
#if AFGAN_X86_DISPATCH
    case Isa::kAvx512: return isa_avx512::Backward(p, fu, fd, dy, signs, dx, parallel_for);
    case Isa::kAvx2: return isa_avx2::Backward(p, fu, fd, dy, signs, dx, parallel_for);
#endif
    default: return isa_baseline::Backward(p, fu, fd, dy, signs, dx, parallel_for);
  }
}

}  // namespace cpu
}  // namespace afgan

extern "C" const char* afgan_flrelu_cpu_isa(void) { return afgan::cpu::IsaName(afgan::cpu::SelectedIsa()); }
