// Filtered leaky ReLU: parameters and the index arithmetic shared by the CPU and
// CUDA kernels. This header has no TensorFlow dependency, so the CUDA kernel and its
// C entry point build without TensorFlow.
//
// Every stage of the op is one "resampling pass" along an axis:
//
//   out[o] = sum_t z[o * down + t - pad] * g[t],   z[j] = in[j / up] if j % up == 0, else 0
//
// i.e. zero-insertion upsampling by `up`, zero padding / cropping by `pad`, correlation
// with taps `g`, and keeping every `down`-th sample. The forward op is two such passes
// (fu with up, fd with down) around the activation; its gradient is the same passes
// with the roles of up/down swapped and the taps reversed (see filtered_lrelu_plan).

#ifndef AFGAN_FILTERED_LRELU_H_
#define AFGAN_FILTERED_LRELU_H_

#if defined(__CUDACC__)
#define AFGAN_HD __host__ __device__ __forceinline__
#else
#define AFGAN_HD inline
#endif

#ifdef __cplusplus
extern "C" {
#endif

// Shape and arguments of one filtered_lrelu call (NHWC, float32).
typedef struct AfganFlreluParams {
  int n, h, w, c;          // Input x: [n, h, w, c].
  int up, down;            // Integer up/down-sampling factors (>= 1).
  int px0, px1, py0, py1;  // Padding w.r.t. the upsampled image (negative crops).
  float gain;              // Gain of the activation.
  float slope;             // Negative-side slope of the leaky ReLU.
  float clamp;             // Output clamp of the activation, < 0 = none.
  int flip_filter;         // 0 = convolution, 1 = correlation.
  int fu_w, fu_h, fu_2d;   // Up filter size; fu_2d = 1: [fu_h, fu_w] taps, 0: separable [fu_w] (fu_h == fu_w).
  int fd_w, fd_h, fd_2d;   // Down filter, likewise.
} AfganFlreluParams;

#ifdef __cplusplus
}
#endif

// Intermediate (after the up filter) and output sizes.
AFGAN_HD int afgan_tmp_w(const AfganFlreluParams& p) { return p.w * p.up + p.px0 + p.px1 - p.fu_w + 1; }
AFGAN_HD int afgan_tmp_h(const AfganFlreluParams& p) { return p.h * p.up + p.py0 + p.py1 - p.fu_h + 1; }
AFGAN_HD int afgan_out_w(const AfganFlreluParams& p) {
  const int t = afgan_tmp_w(p) - p.fd_w;
  return t < 0 ? 0 : t / p.down + 1;
}
AFGAN_HD int afgan_out_h(const AfganFlreluParams& p) {
  const int t = afgan_tmp_h(p) - p.fd_h;
  return t < 0 ? 0 : t / p.down + 1;
}

// One resampling pass along an axis (see the file comment).
struct AfganPass {
  int up, down, pad;   // Zero-insertion factor, output stride, offset of tap 0.
  int taps;            // Number of taps.
  int in_len, out_len; // Input and output lengths along the axis.
};

// Taps of output `o` that hit input samples: t = t0, t0 + up, ... < t1, input index
// (o * down + t - pad) / up. Returns false when none does.
AFGAN_HD bool afgan_tap_range(const AfganPass& s, int o, int* t0, int* t1, int* i0) {
  const int base = o * s.down - s.pad;             // z index of tap 0.
  int t = ((-base) % s.up + s.up) % s.up;          // First tap on a non-zero sample.
  int i = (base + t) / s.up;                       // Its input index.
  if (i < 0) {                                     // Skip taps before the input.
    t += (-i) * s.up;
    i = 0;
  }
  int end = s.taps;                                // Stop at the input's end.
  const int last = (s.in_len - 1) * s.up - base;   // Tap of the last input sample.
  if (last + 1 < end) end = last + 1;
  *t0 = t;
  *t1 = end;
  *i0 = i;
  return t < end;
}

// Elementwise activation and its derivative (0 where clamped).
AFGAN_HD float afgan_act(float v, float gain, float slope, float clamp) {
  v = (v >= 0.f ? v : v * slope) * gain;
  if (clamp >= 0.f) v = v > clamp ? clamp : (v < -clamp ? -clamp : v);
  return v;
}
AFGAN_HD float afgan_act_grad(float v, float gain, float slope, float clamp) {
  const float d = v >= 0.f ? gain : gain * slope;
  if (clamp >= 0.f) {
    const float a = (v >= 0.f ? v : v * slope) * gain;
    if (a > clamp || a < -clamp) return 0.f;
  }
  return d;
}

// The four passes of the forward op and of its gradient, per axis (x = 0, y = 1).
// Forward:  up pass (fu, factor up, pad p0) -> activation -> down pass (fd, stride down).
// Gradient: transposed down pass (fd reversed, factor down, pad fd - 1) -> * act' ->
//           transposed up pass (fu reversed, stride up, pad fu - 1 - p0).
struct AfganPlan {
  AfganPass fwd_up[2], fwd_down[2], bwd_down[2], bwd_up[2];
};

AFGAN_HD AfganPlan afgan_make_plan(const AfganFlreluParams& p) {
  AfganPlan plan;
  const int in_len[2] = {p.w, p.h};
  const int tmp_len[2] = {afgan_tmp_w(p), afgan_tmp_h(p)};
  const int out_len[2] = {afgan_out_w(p), afgan_out_h(p)};
  const int pad0[2] = {p.px0, p.py0};
  const int fu[2] = {p.fu_w, p.fu_h};
  const int fd[2] = {p.fd_w, p.fd_h};
  for (int a = 0; a < 2; ++a) {
    plan.fwd_up[a] = AfganPass{p.up, 1, pad0[a], fu[a], in_len[a], tmp_len[a]};
    plan.fwd_down[a] = AfganPass{1, p.down, 0, fd[a], tmp_len[a], out_len[a]};
    plan.bwd_down[a] = AfganPass{p.down, 1, fd[a] - 1, fd[a], out_len[a], tmp_len[a]};
    plan.bwd_up[a] = AfganPass{1, p.up, fu[a] - 1 - pad0[a], fu[a], tmp_len[a], in_len[a]};
  }
  return plan;
}

// ---------------------------------------------------------------------------
// Tiling: the input / intermediate regions that one output tile depends on.

// A run of indices [lo, lo + len).
struct AfganSpan {
  int lo, len;
};

AFGAN_HD int afgan_floor_div(int a, int b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// Inputs a pass reads for outputs [o0, o0 + count), clipped to the input.
AFGAN_HD AfganSpan afgan_input_span(const AfganPass& s, int o0, int count) {
  const int first = o0 * s.down - s.pad;
  const int last = (o0 + count - 1) * s.down - s.pad + s.taps - 1;
  int lo = -afgan_floor_div(-first, s.up);
  int hi = afgan_floor_div(last, s.up);
  lo = lo < 0 ? 0 : lo;
  hi = hi > s.in_len - 1 ? s.in_len - 1 : hi;
  return AfganSpan{lo, hi >= lo ? hi - lo + 1 : 0};
}

// Regions one output tile depends on (the kernels stage them in fast memory).
struct AfganTileRegions {
  AfganSpan ry, rx;        // Intermediate (tmp-resolution) region.
  AfganSpan iy, ix;        // Input (x) region.
  AfganSpan dy, dx;        // dy region (gradient only).
};

// Regions of the forward tile whose outputs start at (oy0, ox0).
AFGAN_HD AfganTileRegions afgan_forward_regions(const AfganPlan& plan, int oy0, int oh, int ox0, int ow) {
  AfganTileRegions r;
  r.ry = afgan_input_span(plan.fwd_down[1], oy0, oh);
  r.rx = afgan_input_span(plan.fwd_down[0], ox0, ow);
  r.iy = afgan_input_span(plan.fwd_up[1], r.ry.lo, r.ry.len);
  r.ix = afgan_input_span(plan.fwd_up[0], r.rx.lo, r.rx.len);
  r.dy = r.dx = AfganSpan{0, 0};
  return r;
}

// Regions of the gradient tile whose dx outputs start at (oy0, ox0).
AFGAN_HD AfganTileRegions afgan_backward_regions(const AfganPlan& plan, int oy0, int oh, int ox0, int ow) {
  AfganTileRegions r;
  r.ry = afgan_input_span(plan.bwd_up[1], oy0, oh);
  r.rx = afgan_input_span(plan.bwd_up[0], ox0, ow);
  r.iy = afgan_input_span(plan.fwd_up[1], r.ry.lo, r.ry.len);
  r.ix = afgan_input_span(plan.fwd_up[0], r.rx.lo, r.rx.len);
  r.dy = afgan_input_span(plan.bwd_down[1], r.ry.lo, r.ry.len);
  r.dx = afgan_input_span(plan.bwd_down[0], r.rx.lo, r.rx.len);
  return r;
}

// The tile [start, start + size) clipped to [0, len).
AFGAN_HD AfganSpan afgan_clip_tile(int start, int size, int len) {
  return AfganSpan{start, size < len - start ? size : len - start};
}

// Largest region sizes (elements per channel) over all tiles of size `tile`: s0 holds
// a loaded source region, s1 an x-pass result, s2 the intermediate region. Host only.
struct AfganTileBuffers {
  int s0, s1, s2;
};

inline AfganTileBuffers afgan_tile_buffers(const AfganFlreluParams& p, const AfganPlan& plan, bool backward,
                                           int tile) {
  const int rows = backward ? p.h : afgan_out_h(p), cols = backward ? p.w : afgan_out_w(p);
  AfganTileBuffers b{0, 0, 0};
  auto up = [](int* v, int x) { *v = x > *v ? x : *v; };
  for (int ty = 0; ty < rows; ty += tile) {
    for (int tx = 0; tx < cols; tx += tile) {
      const int th = tile < rows - ty ? tile : rows - ty, tw = tile < cols - tx ? tile : cols - tx;
      const AfganTileRegions r = backward ? afgan_backward_regions(plan, ty, th, tx, tw)
                                          : afgan_forward_regions(plan, ty, th, tx, tw);
      up(&b.s0, r.iy.len * r.ix.len);
      up(&b.s0, r.dy.len * r.dx.len);
      // x passes: the up / transposed-down passes give [source rows][tmp cols], the last [tmp rows][tile cols].
      up(&b.s1, r.iy.len * r.rx.len);
      up(&b.s1, r.dy.len * r.rx.len);
      up(&b.s1, r.ry.len * tw);
      up(&b.s2, r.ry.len * r.rx.len);
    }
  }
  return b;
}

// Checks the arguments; returns 0 or a negative code whose message
// afgan_flrelu_error() gives.
AFGAN_HD int afgan_check_params(const AfganFlreluParams& p) {
  if (p.n < 0 || p.h < 1 || p.w < 1 || p.c < 1) return -1;
  if (p.up < 1 || p.down < 1) return -2;
  if (p.fu_w < 1 || p.fu_h < 1 || p.fd_w < 1 || p.fd_h < 1) return -3;
  if (!p.fu_2d && p.fu_w != p.fu_h) return -3;
  if (!p.fd_2d && p.fd_w != p.fd_h) return -3;
  if (afgan_tmp_w(p) < p.fd_w || afgan_tmp_h(p) < p.fd_h || afgan_tmp_w(p) < 1 || afgan_tmp_h(p) < 1) return -4;
  if (!(p.gain > 0.f) || !(p.slope >= 0.f)) return -5;
  return 0;
}

// Number of taps of the up / down filter.
inline int afgan_fu_count(const AfganFlreluParams& p) { return p.fu_2d ? p.fu_w * p.fu_h : p.fu_w; }
inline int afgan_fd_count(const AfganFlreluParams& p) { return p.fd_2d ? p.fd_w * p.fd_h : p.fd_w; }

// Prepares the taps of every pass from the raw filters (host memory): the up taps are
// scaled by the upsampling gain (up per axis), and the forward taps are flipped unless
// flip_filter (convolution); the gradient uses the reversed forward taps. Reversing a
// row-major [h][w] array flips both axes. Outputs hold afgan_fu_count / afgan_fd_count floats.
inline void afgan_prepare_taps(const AfganFlreluParams& p, const float* fu, const float* fd, float* up,
                               float* up_rev, float* down, float* down_rev) {
  const float up_gain = p.fu_2d ? float(p.up) * float(p.up) : float(p.up);
  const int nu = afgan_fu_count(p), nd = afgan_fd_count(p);
  for (int i = 0; i < nu; ++i) {
    const float f = fu[i] * up_gain, r = fu[nu - 1 - i] * up_gain;
    up[i] = p.flip_filter ? f : r;
    up_rev[i] = p.flip_filter ? r : f;
  }
  for (int i = 0; i < nd; ++i) {
    down[i] = p.flip_filter ? fd[i] : fd[nd - 1 - i];
    down_rev[i] = p.flip_filter ? fd[nd - 1 - i] : fd[i];
  }
}

inline const char* afgan_flrelu_error(int code) {
  switch (code) {
    case 0: return "ok";
    case -1: return "x must be [N, H, W, C] with H, W, C >= 1";
    case -2: return "up and down must be >= 1";
    case -3: return "fu and fd must be 1-D [taps] or 2-D [height, width] with at least one tap";
    case -4: return "padding gives an empty output for this input and these filters";
    case -5: return "gain must be > 0 and slope >= 0";
    case -6: return "CUDA error";
    case -7: return "filters too large for the CUDA kernel";
    case -8: return "shape too large for the CUDA kernel (batch > 65535 or tiles do not fit in shared memory)";
    default: return "unknown error";
  }
}

#endif  // AFGAN_FILTERED_LRELU_H_
