// The CPU kernels' hot loops, written once and compiled once per instruction set:
// filtered_lrelu_cpu.cc includes this file (it has no include guard on purpose) inside
// a namespace per instruction set, under `#pragma GCC target`, and dispatches at run
// time. It must not include TensorFlow or any header of its own: everything it needs is
// included before it, so that only the code written here takes the target's
// instructions (library templates stay baseline and shared).
//
// The kernels are fused per work unit: one output tile of one image for a block of 16
// channels goes through every stage (bias, upsampling filter, activation, downsampling
// filter) in small thread-local buffers sized to stay in cache, so no intermediate
// tensor is ever allocated; when a gradient is wanted the forward also writes the
// intermediate's signs (2 bits per element, filtered_lrelu.h), from which the gradient
// gets act' without recomputing the forward. The tiling is the CUDA kernels' (the regions come from
// filtered_lrelu.h). Channels are innermost (NHWC), so every inner loop is a
// fixed-width multiply-add over 16 channels that the compiler turns into vector FMAs
// of the target's width (one AVX-512 register, two AVX2 ones, four SSE2 ones).

// ---------------------------------------------------------------------------
// Passes over a region buffer [rows][cols][kCB] (a block of kCB channels innermost).
// Accumulators stay in registers across taps; kCB is a compile-time constant so every
// channel loop is one or two vector FMAs.

// Filter taps prepared for the passes (afgan_prepare_taps).
struct Taps {
  std::vector<float> up, down;            // Forward taps ([w] or [h * w]).
  std::vector<float> up_rev, down_rev;    // Gradient taps.
  Taps(const AfganFlreluParams& p, const float* fu, const float* fd)
      : up(afgan_fu_count(p)), down(afgan_fd_count(p)), up_rev(afgan_fu_count(p)), down_rev(afgan_fd_count(p)) {
    afgan_prepare_taps(p, fu, fd, up.data(), up_rev.data(), down.data(), down_rev.data());
  }
};

constexpr int kCB = 16;   // Channels per work unit.

// 16 channels as one value: kParts vectors of the instruction set's native width (GCC/Clang
// vector extension), so every channel loop below is one AVX-512 operation, two AVX2 ones or four
// SSE2 ones. Not one 16-float vector type: where that is wider than the hardware's vectors GCC
// keeps it in memory (an accumulator went through the stack on every FMA) and lowers its compares
// and selects element by element, which made the AVX2 copy 5-10x slower than the AVX-512 one.
// AFGAN_CPU_ISA (2 AVX-512, 1 AVX2, 0 baseline) is defined by the includer: `#pragma GCC
// target` does not update GCC's __AVX2__ / __AVX512F__ macros in C++.
#if AFGAN_CPU_ISA == 2
constexpr int kNativeFloats = 16;
#elif AFGAN_CPU_ISA == 1
constexpr int kNativeFloats = 8;
#else
constexpr int kNativeFloats = 4;
#endif
constexpr int kParts = kCB / kNativeFloats;
typedef float NVec __attribute__((vector_size(kNativeFloats * sizeof(float))));
typedef int32_t NIVec __attribute__((vector_size(kNativeFloats * sizeof(int32_t))));
typedef uint32_t NUVec __attribute__((vector_size(kNativeFloats * sizeof(uint32_t))));
// Unaligned loads and stores of an NVec: float alignment, may_alias (it reads float arrays). Not
// std::memcpy: under generic tuning GCC expands a wide memcpy into pieces through the stack.
typedef float UnalignedNVec __attribute__((vector_size(kNativeFloats * sizeof(float)), aligned(alignof(float)),
                                           may_alias));

#if AFGAN_CPU_ISA == 2
typedef NVec Vec;   // One native vector: GCC keeps it in a register as it is.
inline NVec& Part(Vec& v, int) { return v; }
inline const NVec& Part(const Vec& v, int) { return v; }
#else
struct Vec {
  NVec part[kParts];
  Vec& operator+=(const Vec& o) {
    for (int k = 0; k < kParts; ++k) part[k] += o.part[k];
    return *this;
  }
  Vec operator*(float w) const {
    Vec r;
    for (int k = 0; k < kParts; ++k) r.part[k] = part[k] * w;
    return r;
  }
  Vec operator*(const Vec& o) const {
    Vec r;
    for (int k = 0; k < kParts; ++k) r.part[k] = part[k] * o.part[k];
    return r;
  }
  float operator[](int c) const { return part[c / kNativeFloats][c % kNativeFloats]; }
};
inline NVec& Part(Vec& v, int k) { return v.part[k]; }
inline const NVec& Part(const Vec& v, int k) { return v.part[k]; }
#endif

inline Vec LoadV(const float* p) {
  Vec v;
  for (int k = 0; k < kParts; ++k) Part(v, k) = *reinterpret_cast<const UnalignedNVec*>(p + k * kNativeFloats);
  return v;
}
inline void StoreV(float* p, const Vec& v) {
  for (int k = 0; k < kParts; ++k) *reinterpret_cast<UnalignedNVec*>(p + k * kNativeFloats) = Part(v, k);
}

inline NVec ActN(NVec v, float gain, float slope, float clamp) {
  v = (v >= 0.f ? v : v * slope) * gain;
  if (clamp >= 0.f) {
    v = v > clamp ? NVec{} + clamp : v;
    v = v < -clamp ? NVec{} - clamp : v;
  }
  return v;
}

inline Vec ActV(Vec v, float gain, float slope, float clamp) {
  for (int k = 0; k < kParts; ++k) Part(v, k) = ActN(Part(v, k), gain, slope, clamp);
  return v;
}

// Bit k of the result: lane k of the compare mask m is set (all ones).
inline uint32_t LaneMask(NIVec m) {
#if AFGAN_CPU_ISA == 2
  return _mm512_movepi32_mask(reinterpret_cast<__m512i>(m));
#elif AFGAN_CPU_ISA == 1
  return uint32_t(_mm256_movemask_ps(reinterpret_cast<__m256>(m)));
#elif defined(__SSE2__) && (defined(__x86_64__) || defined(__i386__))
  return uint32_t(_mm_movemask_ps(reinterpret_cast<__m128>(m)));
#else
  uint32_t mask = 0;
  for (int c = 0; c < kNativeFloats; ++c) mask |= uint32_t(m[c] & 1) << c;
  return mask;
#endif
}

// The signs word of 16 channels (filtered_lrelu.h): bits 0-15 the lanes where !(v >= 0), bits
// 16-31 those where |act(v)| > clamp (clamp >= 0), as lane masks of the compares.
// SignGradV: act'(v) of 16 channels from their word (afgan_sign_grad per lane).
#if AFGAN_CPU_ISA == 2
inline uint32_t SignWordV(const Vec& v, float gain, float slope, float clamp) {
  uint32_t word = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_NGE_UQ);
  if (clamp >= 0.f) {
    const Vec a = (v >= 0.f ? v : v * slope) * gain;
    word |= uint32_t(_mm512_cmp_ps_mask(a, _mm512_set1_ps(clamp), _CMP_GT_OQ) |
                     _mm512_cmp_ps_mask(a, _mm512_set1_ps(-clamp), _CMP_LT_OQ)) << 16;
  }
  return word;
}

inline Vec SignGradV(uint32_t word, float gain, float slope) {
  const __m512 d = _mm512_mask_blend_ps(__mmask16(word), _mm512_set1_ps(gain), _mm512_set1_ps(gain * slope));
  return _mm512_maskz_mov_ps(__mmask16(~(word >> 16)), d);
}
#else
inline uint32_t SignWordV(const Vec& v, float gain, float slope, float clamp) {
  uint32_t word = 0;
  for (int k = 0; k < kParts; ++k) {
    const NVec x = Part(v, k);
    uint32_t bits = LaneMask(~(x >= 0.f));
    if (clamp >= 0.f) {
      const NVec a = (x >= 0.f ? x : x * slope) * gain;
      bits |= LaneMask((a > clamp) | (a < -clamp)) << 16;
    }
    word |= bits << (k * kNativeFloats);
  }
  return word;
}

inline Vec SignGradV(uint32_t word, float gain, float slope) {
  const NVec zero = {};
  const NUVec w = NUVec{} + word;
  Vec p;
  for (int k = 0; k < kParts; ++k) {
    NUVec neg_bit, clamp_bit;     // Each lane's two bits (and + compare: SSE2 has no per-lane shifts).
    for (int c = 0; c < kNativeFloats; ++c) {
      neg_bit[c] = 1u << (k * kNativeFloats + c);
      clamp_bit[c] = 1u << (16 + k * kNativeFloats + c);
    }
    const NVec d = (w & neg_bit) != 0u ? zero + gain * slope : zero + gain;
    Part(p, k) = (w & clamp_bit) != 0u ? zero : d;
  }
  return p;
}
#endif

// Four outputs accumulated together: one weight broadcast and four FMAs per tap, the
// inputs `gap` floats apart.
struct Acc4 {
  Vec a0 = {}, a1 = {}, a2 = {}, a3 = {};
  void Add(const float* v, int64_t gap, float w) {
    a0 += LoadV(v) * w;
    a1 += LoadV(v + gap) * w;
    a2 += LoadV(v + 2 * gap) * w;
    a3 += LoadV(v + 3 * gap) * w;
  }
  template <typename Store>
  void Store4(Store store) const {
    store(0, a0);
    store(1, a1);
    store(2, a2);
    store(3, a3);
  }
};

// Tap ranges of every output of a pass along one axis, precomputed once per call so the
// inner loops do no integer division: taps t0[o], t0[o] + up, ... < t1[o] starting at
// input index i0[o] (t1 == t0: no tap hits the input).
struct AxisTaps {
  std::vector<int> t0, t1, i0;
  int up = 1, down = 1;
  explicit AxisTaps(const AfganPass& s) : t0(s.out_len), t1(s.out_len), i0(s.out_len), up(s.up), down(s.down) {
    for (int o = 0; o < s.out_len; ++o) {
      if (!afgan_tap_range(s, o, &t0[o], &t1[o], &i0[o])) t1[o] = t0[o];
    }
  }

  // Outputs o .. o + 3 can be computed together (one weight broadcast per tap, four FMAs):
  // up == 1, the same tap range, and inputs exactly `down` apart.
  bool Uniform4(int o) const {
    return up == 1 && t0[o] == t0[o + 3] && t1[o] == t1[o + 3] && t0[o] == t0[o + 1] && t1[o] == t1[o + 1] &&
           t0[o] == t0[o + 2] && t1[o] == t1[o + 2] && i0[o + 3] == i0[o] + 3 * down;
  }
};

// The tables of all passes: [pass][axis], passes fwd_up, fwd_down, bwd_down, bwd_up.
struct PlanTaps {
  std::vector<AxisTaps> fwd_up, fwd_down, bwd_down, bwd_up;
  explicit PlanTaps(const AfganPlan& plan) {
    for (int a = 0; a < 2; ++a) {
      fwd_up.emplace_back(plan.fwd_up[a]);
      fwd_down.emplace_back(plan.fwd_down[a]);
      bwd_down.emplace_back(plan.bwd_down[a]);
      bwd_up.emplace_back(plan.bwd_up[a]);
    }
  }
};

// src[n, sy, sx, c0 : c0 + kCB] (+ bias) -> dst [sy.len][sx.len][kCB]; channels >= C are 0.
void Load(const float* src, const float* bias, int rows, int cols, int channels, int n, int c0, AfganSpan sy,
          AfganSpan sx, float* dst) {
  const int cb = std::min(kCB, channels - c0);
  float b[kCB] = {};
  if (bias != nullptr) std::copy(bias + c0, bias + c0 + cb, b);
  for (int r = 0; r < sy.len; ++r) {
    const float* s = src + ((static_cast<int64_t>(n) * rows + sy.lo + r) * cols + sx.lo) * channels + c0;
    float* d = dst + static_cast<int64_t>(r) * sx.len * kCB;
    for (int col = 0; col < sx.len; ++col, s += channels, d += kCB) {
      if (cb == kCB) {
        for (int c = 0; c < kCB; ++c) d[c] = s[c] + b[c];
      } else {
        for (int c = 0; c < kCB; ++c) d[c] = c < cb ? s[c] + b[c] : 0.f;
      }
    }
  }
}

// x pass: src [rows][src_x.len] -> dst [rows][out.len].
void PassX(const float* __restrict__ src, int rows, AfganSpan src_x, const AxisTaps& s, const float* g,
           AfganSpan out, float* __restrict__ dst) {
  const int step = s.up;
  const int64_t gap = static_cast<int64_t>(s.down) * kCB;
  const int end = out.lo + out.len;
  for (int r = 0; r < rows; ++r) {
    const float* row = src + (static_cast<int64_t>(r) * src_x.len - src_x.lo) * kCB;
    float* d = dst + static_cast<int64_t>(r) * out.len * kCB;
    int o = out.lo;
    for (; o + 3 < end && s.Uniform4(o); o += 4, d += 4 * kCB) {
      Acc4 acc;
      const float* v = row + static_cast<int64_t>(s.i0[o]) * kCB;
      for (int t = s.t0[o]; t < s.t1[o]; ++t, v += kCB) acc.Add(v, gap, g[t]);
      acc.Store4([&](int k, const Vec& a) { StoreV(d + k * kCB, a); });
    }
    for (; o < end; ++o, d += kCB) {
      Vec acc = {};
      const float* v = row + static_cast<int64_t>(s.i0[o]) * kCB;
      for (int t = s.t0[o]; t < s.t1[o]; t += step, v += kCB) acc += LoadV(v) * g[t];
      StoreV(d, acc);
    }
  }
}

// y pass: src [src_y.len][out_x.len] -> store(r, col, acc vector) over out_y x out_x; or, with
// g2d, the 2-D pass from src [src_y.len][src_x.len] with taps g[ty * sx.taps + tx].
template <typename Store>
void PassY(const float* __restrict__ src, AfganSpan src_y, AfganSpan src_x, const AxisTaps& sy, const AxisTaps& sx,
           int g_width, const float* g, bool g2d, AfganSpan out_y, AfganSpan out_x, Store store) {
  const int64_t src_row = static_cast<int64_t>(g2d ? src_x.len : out_x.len) * kCB;
  for (int r = 0; r < out_y.len; ++r) {
    const int o = r + out_y.lo, ty0 = sy.t0[o], ty1 = sy.t1[o];
    const float* rows = src + (sy.i0[o] - src_y.lo) * src_row;
    int col = 0;
    if (!g2d) {     // Separable y pass: four neighbouring columns share every tap.
      for (; col + 3 < out_x.len; col += 4) {
        Acc4 acc;
        const float* v = rows + static_cast<int64_t>(col) * kCB;
        for (int t = ty0; t < ty1; t += sy.up, v += src_row) acc.Add(v, kCB, g[t]);
        acc.Store4([&](int k, const Vec& a) { store(r, col + k, a); });
      }
    } else {        // 2-D pass: four columns with the same x taps, inputs `down` apart.
      const int64_t gap = static_cast<int64_t>(sx.down) * kCB;
      for (; col + 3 < out_x.len && sx.Uniform4(col + out_x.lo); col += 4) {
        Acc4 acc;
        const int ox = col + out_x.lo, tx0 = sx.t0[ox], tx1 = sx.t1[ox];
        const float* row = rows + static_cast<int64_t>(sx.i0[ox] - src_x.lo) * kCB;
        for (int ty = ty0; ty < ty1; ty += sy.up, row += src_row) {
          const float* g_row = g + ty * g_width;
          const float* v = row;
          for (int tx = tx0; tx < tx1; ++tx, v += kCB) acc.Add(v, gap, g_row[tx]);
        }
        acc.Store4([&](int k, const Vec& a) { store(r, col + k, a); });
      }
    }
    for (; col < out_x.len; ++col) {
      Vec acc = {};
      if (!g2d) {
        const float* v = rows + static_cast<int64_t>(col) * kCB;
        for (int t = ty0; t < ty1; t += sy.up, v += src_row) acc += LoadV(v) * g[t];
      } else {
        const int ox = col + out_x.lo, tx0 = sx.t0[ox], tx1 = sx.t1[ox];
        const float* row = rows + static_cast<int64_t>(sx.i0[ox] - src_x.lo) * kCB;
        for (int ty = ty0; ty < ty1; ty += sy.up, row += src_row) {
          const float* g_row = g + ty * g_width;
          const float* v = row;
          for (int tx = tx0; tx < tx1; tx += sx.up, v += kCB) acc += LoadV(v) * g_row[tx];
        }
      }
      store(r, col, acc);
    }
  }
}

// Both passes of one filter (x then y, or one 2-D pass) from s0 into store; s1 holds the x pass.
template <typename Store>
void TwoPass(const float* s0, float* s1, AfganSpan src_y, AfganSpan src_x, const std::vector<AxisTaps>& taps,
             int g_width, const float* g, bool g2d, AfganSpan out_y, AfganSpan out_x, Store store) {
  if (g2d) {
    PassY(s0, src_y, src_x, taps[1], taps[0], g_width, g, true, out_y, out_x, store);
    return;
  }
  PassX(s0, src_y.len, src_x, taps[0], g, out_x, s1);
  PassY(s1, src_y, out_x, taps[1], taps[0], g_width, g, false, out_y, out_x, store);
}

// Thread-local buffers of one work unit, 64-byte aligned so that no 16-channel vector
// straddles two cache lines.
struct Buffers {
  std::vector<float> storage;
  float *s0 = nullptr, *s1 = nullptr, *s2 = nullptr;
  void Reserve(const AfganTileBuffers& need) {
    const int64_t n0 = need.s0 * kCB, n1 = need.s1 * kCB;
    storage.resize(n0 + n1 + need.s2 * kCB + 16);
    const uintptr_t base = reinterpret_cast<uintptr_t>(storage.data());
    s0 = storage.data() + ((64 - base % 64) % 64) / sizeof(float);
    s1 = s0 + n0;
    s2 = s1 + n1;
  }
};

// Store that writes one tile of the (N, rows, cols, C) output.
struct TileWriter {
  float* out;
  int rows, cols, channels, n, c0;
  AfganSpan oy, ox;
  void operator()(int r, int col, const Vec& acc) const {
    float* d = out + ((static_cast<int64_t>(n) * rows + oy.lo + r) * cols + ox.lo + col) * channels + c0;
    if (channels - c0 >= kCB) {
      StoreV(d, acc);
    } else {
      for (int c = 0; c < channels - c0; ++c) d[c] = acc[c];
    }
  }
};

// One output tile of y; with kSigns, also the signs of the part of its intermediate region that
// it owns (afgan_owned_sign_len: each position once, so plain stores).
template <bool kSigns>
void ForwardUnit(const AfganFlreluParams& p, const AfganPlan& plan, const PlanTaps& pt, const Taps& taps,
                 const float* x, const float* b, float* y, uint32_t* signs, int n, int c0, AfganSpan oy,
                 AfganSpan ox, Buffers& buf) {
  const AfganTileRegions r = afgan_forward_regions(plan, oy.lo, oy.len, ox.lo, ox.len);
  float *s0 = buf.s0, *s1 = buf.s1, *s2 = buf.s2;
  const float gain = p.gain, slope = p.slope, clamp = p.clamp;
  const int own_h = afgan_owned_sign_len(r.ry, oy, afgan_out_h(p), p.down);
  const int own_w = afgan_owned_sign_len(r.rx, ox, afgan_out_w(p), p.down);
  const int64_t col_stride = afgan_sign_words(p), row_stride = int64_t(afgan_tmp_w(p)) * col_stride;
  uint32_t* const sign_base = kSigns ? signs + afgan_sign_word_index(p, n, r.ry.lo, r.rx.lo, c0 / kCB) : nullptr;
  Load(x, b, p.h, p.w, p.c, n, c0, r.iy, r.ix, s0);
  if (!kSigns) {
    TwoPass(s0, s1, r.iy, r.ix, pt.fwd_up, p.fu_w, taps.up.data(), p.fu_2d, r.ry, r.rx,
            [&](int i, int j, const Vec& acc) {
              StoreV(s2 + (static_cast<int64_t>(i) * r.rx.len + j) * kCB, ActV(acc, gain, slope, clamp));
            });
  } else {
    // The pre-activation first, then one sweep that writes the owned signs and activates in place
    // (the signs inside the pass's store cost 4x more: 1.3 against 0.3 ms on a 32x32 StyleGAN3-T layer).
    TwoPass(s0, s1, r.iy, r.ix, pt.fwd_up, p.fu_w, taps.up.data(), p.fu_2d, r.ry, r.rx,
            [&](int i, int j, const Vec& acc) { StoreV(s2 + (static_cast<int64_t>(i) * r.rx.len + j) * kCB, acc); });
    for (int i = 0; i < r.ry.len; ++i) {
      float* row = s2 + static_cast<int64_t>(i) * r.rx.len * kCB;
      uint32_t* words = sign_base + i * row_stride;
      const int owned = i < own_h ? own_w : 0;
      int j = 0;
      for (; j < owned; ++j, words += col_stride) {
        const Vec v = LoadV(row + j * kCB);
        *words = SignWordV(v, gain, slope, clamp);
        StoreV(row + j * kCB, ActV(v, gain, slope, clamp));
      }
      for (; j < r.rx.len; ++j) StoreV(row + j * kCB, ActV(LoadV(row + j * kCB), gain, slope, clamp));
    }
  }
  TwoPass(s2, s1, r.ry, r.rx, pt.fwd_down, p.fd_w, taps.down.data(), p.fd_2d, oy, ox,
          TileWriter{y, afgan_out_h(p), afgan_out_w(p), p.c, n, c0, oy, ox});
}

// One tile of dx from dy and the forward's signs (no recomputation of the forward).
void BackwardUnit(const AfganFlreluParams& p, const AfganPlan& plan, const PlanTaps& pt, const Taps& taps,
                  const float* dy, const uint32_t* signs, float* dx, int n, int c0, AfganSpan oy, AfganSpan ox,
                  Buffers& buf) {
  const AfganTileRegions r = afgan_backward_regions(plan, oy.lo, oy.len, ox.lo, ox.len);
  float *s0 = buf.s0, *s1 = buf.s1, *s2 = buf.s2;
  // G = (transposed down pass of dy) * act'(pre-activation) over the intermediate region.
  const float gain = p.gain, slope = p.slope;
  const int64_t col_stride = afgan_sign_words(p), row_stride = int64_t(afgan_tmp_w(p)) * col_stride;
  const uint32_t* const sign_base = signs + afgan_sign_word_index(p, n, r.ry.lo, r.rx.lo, c0 / kCB);
  Load(dy, nullptr, afgan_out_h(p), afgan_out_w(p), p.c, n, c0, r.dy, r.dx, s0);
  TwoPass(s0, s1, r.dy, r.dx, pt.bwd_down, p.fd_w, taps.down_rev.data(), p.fd_2d, r.ry, r.rx,
          [&](int i, int j, const Vec& acc) {
            const uint32_t word = sign_base[i * row_stride + j * col_stride];
            StoreV(s2 + (static_cast<int64_t>(i) * r.rx.len + j) * kCB, acc * SignGradV(word, gain, slope));
          });
  // dx = transposed up pass of G.
  TwoPass(s2, s1, r.ry, r.rx, pt.bwd_up, p.fu_w, taps.up_rev.data(), p.fu_2d, oy, ox,
          TileWriter{dx, p.h, p.w, p.c, n, c0, oy, ox});
}

// Tile edge: the largest whose buffers fit a per-thread budget. Larger tiles recompute
// less halo; 2 MB (L2 is 1 MB per core, L3 32 MB on the development machine) was the
// best of 0.16 / 0.38 / 1 / 2 / 4 MB for the StyleGAN3-T and -R layers.
int ChooseTile(const AfganFlreluParams& p, const AfganPlan& plan, bool backward, AfganTileBuffers* need) {
  constexpr int64_t kBudgetFloats = (2048 * 1024) / sizeof(float);
  for (int tile : {128, 96, 64, 48, 32, 24, 16, 12, 8, 4, 2}) {
    *need = afgan_tile_buffers(p, plan, backward, tile);
    if ((need->s0 + need->s1 + need->s2) * kCB <= kBudgetFloats) return tile;
  }
  *need = afgan_tile_buffers(p, plan, backward, 1);
  return 1;
}

// Runs fn(n, c0, tile_y, tile_x, buffers) over all work units (image x tile x channel
// block) through the caller's parallel-for.
template <typename Fn>
void ForEachUnit(const AfganFlreluParams& p, bool backward, const ParallelFor& parallel_for, Fn fn) {
  const AfganPlan plan = afgan_make_plan(p);
  AfganTileBuffers need;
  const int tile = ChooseTile(p, plan, backward, &need);
  const int rows = backward ? p.h : afgan_out_h(p), cols = backward ? p.w : afgan_out_w(p);
  const int tiles_x = (cols + tile - 1) / tile, tiles_y = (rows + tile - 1) / tile;
  const int blocks = (p.c + kCB - 1) / kCB;
  const int64_t per_image = static_cast<int64_t>(tiles_y) * tiles_x * blocks;
  const int64_t units = per_image * p.n;
  const int64_t cost = need.s2 * kCB * (p.fu_w + p.fd_w + 4) * 2;
  parallel_for(units, cost, [&](int64_t begin, int64_t end) {
    Buffers buf;
    buf.Reserve(need);
    for (int64_t unit = begin; unit < end; ++unit) {
      const int n = static_cast<int>(unit / per_image);
      const int64_t rest = unit % per_image;
      const int c0 = static_cast<int>(rest % blocks) * kCB;
      const int t = static_cast<int>(rest / blocks);
      fn(n, c0, afgan_clip_tile((t / tiles_x) * tile, tile, rows), afgan_clip_tile((t % tiles_x) * tile, tile, cols),
         buf);
    }
  });
}

// Entry points of this instruction set (the parameters are valid: afgan_check_params).
void Forward(const AfganFlreluParams& p, const float* fu, const float* fd, const float* x, const float* b, float* y,
             uint8_t* signs, const ParallelFor& parallel_for) {
  const Taps taps(p, fu, fd);
  const AfganPlan plan = afgan_make_plan(p);
  const PlanTaps plan_taps(plan);
  uint32_t* words = reinterpret_cast<uint32_t*>(signs);
  ForEachUnit(p, false, parallel_for, [&](int n, int c0, AfganSpan oy, AfganSpan ox, Buffers& buf) {
    if (words != nullptr) {
      ForwardUnit<true>(p, plan, plan_taps, taps, x, b, y, words, n, c0, oy, ox, buf);
    } else {
      ForwardUnit<false>(p, plan, plan_taps, taps, x, b, y, words, n, c0, oy, ox, buf);
    }
  });
}

void Backward(const AfganFlreluParams& p, const float* fu, const float* fd, const float* dy, const uint8_t* signs,
              float* dx, const ParallelFor& parallel_for) {
  const Taps taps(p, fu, fd);
  const AfganPlan plan = afgan_make_plan(p);
  const PlanTaps plan_taps(plan);
  const uint32_t* words = reinterpret_cast<const uint32_t*>(signs);
  ForEachUnit(p, true, parallel_for, [&](int n, int c0, AfganSpan oy, AfganSpan ox, Buffers& buf) {
    BackwardUnit(p, plan, plan_taps, taps, dy, words, dx, n, c0, oy, ox, buf);
  });
}
