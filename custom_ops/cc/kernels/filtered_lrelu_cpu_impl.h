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
// tensor is ever allocated. The tiling is the CUDA kernels' (the regions come from
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

// 16 channels as one value (GCC/Clang vector extension): every channel loop below is one
// vector operation of the instruction set this copy is compiled for.
typedef float Vec __attribute__((vector_size(kCB * sizeof(float))));

// Unaligned loads and stores of a Vec: a vector type with float alignment (may_alias: it reads
// float arrays). Not std::memcpy: under generic tuning GCC expands a 64-byte memcpy into 128-bit
// pieces reassembled through the stack (-mmove-max=128), which made the AVX2 loops 2x slower.
typedef float UnalignedVec __attribute__((vector_size(kCB * sizeof(float)), aligned(alignof(float)), may_alias));

inline Vec LoadV(const float* p) { return *reinterpret_cast<const UnalignedVec*>(p); }
inline void StoreV(float* p, const Vec& v) { *reinterpret_cast<UnalignedVec*>(p) = v; }

inline Vec ActV(Vec v, float gain, float slope, float clamp) {
  v = (v >= 0.f ? v : v * slope) * gain;
  if (clamp >= 0.f) {
    v = v > clamp ? Vec{} + clamp : v;
    v = v < -clamp ? Vec{} - clamp : v;
  }
  return v;
}

inline Vec ActGradV(Vec v, float gain, float slope, float clamp) {
  const Vec zero = {};
  Vec d = v >= 0.f ? zero + gain : zero + gain * slope;
  if (clamp >= 0.f) {
    const Vec a = (v >= 0.f ? v : v * slope) * gain;
    d = (a > clamp || a < -clamp) ? zero : d;
  }
  return d;
}

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

void ForwardUnit(const AfganFlreluParams& p, const AfganPlan& plan, const PlanTaps& pt, const Taps& taps,
                 const float* x, const float* b, float* y, int n, int c0, AfganSpan oy, AfganSpan ox, Buffers& buf) {
  const AfganTileRegions r = afgan_forward_regions(plan, oy.lo, oy.len, ox.lo, ox.len);
  float *s0 = buf.s0, *s1 = buf.s1, *s2 = buf.s2;
  Load(x, b, p.h, p.w, p.c, n, c0, r.iy, r.ix, s0);
  TwoPass(s0, s1, r.iy, r.ix, pt.fwd_up, p.fu_w, taps.up.data(), p.fu_2d, r.ry, r.rx,
          [&](int i, int j, const Vec& acc) {
            StoreV(s2 + (static_cast<int64_t>(i) * r.rx.len + j) * kCB, ActV(acc, p.gain, p.slope, p.clamp));
          });
  TwoPass(s2, s1, r.ry, r.rx, pt.fwd_down, p.fd_w, taps.down.data(), p.fd_2d, oy, ox,
          TileWriter{y, afgan_out_h(p), afgan_out_w(p), p.c, n, c0, oy, ox});
}

void BackwardUnit(const AfganFlreluParams& p, const AfganPlan& plan, const PlanTaps& pt, const Taps& taps,
                  const float* dy, const float* x, const float* b, float* dx, int n, int c0, AfganSpan oy,
                  AfganSpan ox, Buffers& buf) {
  const AfganTileRegions r = afgan_backward_regions(plan, oy.lo, oy.len, ox.lo, ox.len);
  float *s0 = buf.s0, *s1 = buf.s1, *s2 = buf.s2;
  // G = transposed down pass of dy over the intermediate region.
  Load(dy, nullptr, afgan_out_h(p), afgan_out_w(p), p.c, n, c0, r.dy, r.dx, s0);
  TwoPass(s0, s1, r.dy, r.dx, pt.bwd_down, p.fd_w, taps.down_rev.data(), p.fd_2d, r.ry, r.rx,
          [&](int i, int j, const Vec& acc) { StoreV(s2 + (static_cast<int64_t>(i) * r.rx.len + j) * kCB, acc); });
  // G *= act'(pre-activation), rebuilt from x.
  Load(x, b, p.h, p.w, p.c, n, c0, r.iy, r.ix, s0);
  TwoPass(s0, s1, r.iy, r.ix, pt.fwd_up, p.fu_w, taps.up.data(), p.fu_2d, r.ry, r.rx,
          [&](int i, int j, const Vec& acc) {
            float* d = s2 + (static_cast<int64_t>(i) * r.rx.len + j) * kCB;
            StoreV(d, LoadV(d) * ActGradV(acc, p.gain, p.slope, p.clamp));
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
  const int64_t cost = need.s2 * kCB * (p.fu_w + p.fd_w + 4) * (backward ? 3 : 2);
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
             const ParallelFor& parallel_for) {
  const Taps taps(p, fu, fd);
  const AfganPlan plan = afgan_make_plan(p);
  const PlanTaps plan_taps(plan);
  ForEachUnit(p, false, parallel_for, [&](int n, int c0, AfganSpan oy, AfganSpan ox, Buffers& buf) {
    ForwardUnit(p, plan, plan_taps, taps, x, b, y, n, c0, oy, ox, buf);
  });
}

void Backward(const AfganFlreluParams& p, const float* fu, const float* fd, const float* dy, const float* x,
              const float* b, float* dx, const ParallelFor& parallel_for) {
  const Taps taps(p, fu, fd);
  const AfganPlan plan = afgan_make_plan(p);
  const PlanTaps plan_taps(plan);
  ForEachUnit(p, true, parallel_for, [&](int n, int c0, AfganSpan oy, AfganSpan ox, Buffers& buf) {
    BackwardUnit(p, plan, plan_taps, taps, dy, x, b, dx, n, c0, oy, ox, buf);
  });
}
