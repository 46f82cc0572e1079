// Filtered leaky ReLU: parameters, limits, sizes, status codes and the index
// arithmetic shared by the op's shape function, the CPU kernels and the CUDA kernels.
// This header has no TensorFlow dependency, so the CUDA kernel, its C entry points
// and the CPU kernels build without TensorFlow.
//
// Every stage of the op is one "resampling pass" along an axis:
//
//   out[o] = sum_t z[o * down + t - pad] * g[t],   z[j] = in[j / up] if j % up == 0, else 0
//
// i.e. zero-insertion upsampling by `up`, zero padding / cropping by `pad`, correlation
// with taps `g`, and keeping every `down`-th sample. The forward op is two such passes
// (fu with up, fd with down) around the activation; its gradient is the same passes
// with the roles of up/down swapped and the taps reversed (see afgan_make_plan).
//
// Sizes are computed in 64-bit and checked against the limits below before any
// kernel runs (afgan_check_params); within those limits every index the kernels
// compute in 32-bit `int` fits, so hostile arguments get an error, never an overflow.

#ifndef AFGAN_FILTERED_LRELU_H_
#define AFGAN_FILTERED_LRELU_H_

#include <math.h>
#include <stdint.h>

#if defined(__CUDACC__)
#define AFGAN_HD __host__ __device__ __forceinline__
#else
// static: every translation unit (also each instruction-set variant of the CPU
// kernels) gets its own copy, so the linker never substitutes one compiled for
// another instruction set.
#define AFGAN_HD static inline
#endif

// Limits of the op (the Python wrapper and the shape function enforce the same).
#define AFGAN_FLRELU_MAX_FACTOR 64                  // up and down.
#define AFGAN_FLRELU_MAX_TAPS 1024                  // Filter taps per axis.
#define AFGAN_FLRELU_MAX_DIM (1 << 24)              // Any spatial length, |padding| and the upsampled size.
#define AFGAN_FLRELU_MAX_ELEMENTS 2147483647LL      // Elements of x and of y (2^31 - 1).
#define AFGAN_FLRELU_MAX_SIGN_BYTES 2147483647LL    // Bytes of the signs for the gradient (see below).

#ifdef __cplusplus
extern "C" {
#endif

// Shape and arguments of one filtered_lrelu call (NHWC, float32).
typedef struct AfganFlreluParams {
  int n, h, w, c;          // Input x: [n, h, w, c].
  int up, down;            // Integer up/down-sampling factors (1 .. AFGAN_FLRELU_MAX_FACTOR).
  int px0, px1, py0, py1;  // Padding w.r.t. the upsampled image (negative crops).
  float gain;              // Gain of the activation.
  float slope;             // Negative-side slope of the leaky ReLU.
  float clamp;             // Output clamp of the activation, < 0 = none.
  int flip_filter;         // 0 = convolution, 1 = correlation.
  int fu_w, fu_h, fu_2d;   // Up filter size; fu_2d = 1: [fu_h, fu_w] taps, 0: separable [fu_w] (fu_h == fu_w).
  int fd_w, fd_h, fd_2d;   // Down filter, likewise.
} AfganFlreluParams;

// Result of every check and entry point: 0, or a negative code that
// afgan_flrelu_error() describes.
typedef enum AfganFlreluStatus {
  AFGAN_FLRELU_OK = 0,
  AFGAN_FLRELU_BAD_X = -1,               // x shape out of range.
  AFGAN_FLRELU_BAD_UP = -2,              // up out of range.
  AFGAN_FLRELU_BAD_FILTER = -3,          // fu / fd shape out of range.
  AFGAN_FLRELU_EMPTY_OUTPUT = -4,        // padding leaves no output.
  AFGAN_FLRELU_BAD_ACTIVATION = -5,      // gain, slope or clamp out of range.
  AFGAN_FLRELU_CUDA_ERROR = -6,          // A CUDA call failed (see afgan_flrelu_cuda_last_error).
  AFGAN_FLRELU_CUDA_FILTERS_TOO_LARGE = -7,
  AFGAN_FLRELU_CUDA_SHAPE_TOO_LARGE = -8,
  AFGAN_FLRELU_BAD_DOWN = -9,            // down out of range.
  AFGAN_FLRELU_BAD_PADDING = -10,        // |padding| or the upsampled size over AFGAN_FLRELU_MAX_DIM.
  AFGAN_FLRELU_OUTPUT_TOO_LARGE = -11,   // y over AFGAN_FLRELU_MAX_ELEMENTS.
  AFGAN_FLRELU_SIGNS_TOO_LARGE = -12,    // The signs over AFGAN_FLRELU_MAX_SIGN_BYTES.
} AfganFlreluStatus;

#ifdef __cplusplus
}
#endif

// Output length along one axis (64-bit; <= 0 means empty): in * up + p0 + p1 taps, less the
// (fu - 1) + (fd - 1) samples the two filters consume, then every `down`-th sample.
AFGAN_HD int64_t afgan_out_len(int64_t in, int64_t up, int64_t down, int64_t p0, int64_t p1, int64_t fu,
                               int64_t fd) {
  const int64_t t = in * up + p0 + p1 - fu + 1 - fd;   // Last valid start in the intermediate.
  return t < 0 ? 0 : t / down + 1;
}

// Intermediate length along one axis (after the up filter; 64-bit), and the intermediate and
// output sizes of valid parameters.
AFGAN_HD int64_t afgan_tmp_len(int64_t in, int64_t up, int64_t p0, int64_t p1, int64_t fu) {
  return in * up + p0 + p1 - fu + 1;
}
AFGAN_HD int afgan_tmp_w(const AfganFlreluParams& p) { return (int)afgan_tmp_len(p.w, p.up, p.px0, p.px1, p.fu_w); }
AFGAN_HD int afgan_tmp_h(const AfganFlreluParams& p) { return (int)afgan_tmp_len(p.h, p.up, p.py0, p.py1, p.fu_h); }
AFGAN_HD int afgan_out_w(const AfganFlreluParams& p) {
  return (int)afgan_out_len(p.w, p.up, p.down, p.px0, p.px1, p.fu_w, p.fd_w);
}
AFGAN_HD int afgan_out_h(const AfganFlreluParams& p) {
  return (int)afgan_out_len(p.h, p.up, p.down, p.py0, p.py1, p.fu_h, p.fd_h);
}

// Checks one axis: the upsampled, padded length and the output length (64-bit).
AFGAN_HD AfganFlreluStatus afgan_check_axis(int64_t in, int64_t up, int64_t down, int64_t p0, int64_t p1,
                                            int64_t fu, int64_t fd) {
  const int64_t max_dim = AFGAN_FLRELU_MAX_DIM;
  if (in < 1 || in > max_dim) return AFGAN_FLRELU_BAD_X;
  if (fu < 1 || fu > AFGAN_FLRELU_MAX_TAPS || fd < 1 || fd > AFGAN_FLRELU_MAX_TAPS) return AFGAN_FLRELU_BAD_FILTER;
  if (p0 < -max_dim || p0 > max_dim || p1 < -max_dim || p1 > max_dim) return AFGAN_FLRELU_BAD_PADDING;
  const int64_t padded = in * up + p0 + p1;
  if (padded > max_dim) return AFGAN_FLRELU_BAD_PADDING;
  if (afgan_out_len(in, up, down, p0, p1, fu, fd) < 1) return AFGAN_FLRELU_EMPTY_OUTPUT;
  return AFGAN_FLRELU_OK;
}

// Checks every argument against the limits; 0 or an AfganFlreluStatus.
AFGAN_HD int afgan_check_params(const AfganFlreluParams& p) {
  const int64_t max_dim = AFGAN_FLRELU_MAX_DIM, max_taps = AFGAN_FLRELU_MAX_TAPS;
  if (p.n < 0 || p.h < 1 || p.w < 1 || p.c < 1 || p.h > max_dim || p.w > max_dim) return AFGAN_FLRELU_BAD_X;
  if ((int64_t)p.n * p.h * p.w * p.c > AFGAN_FLRELU_MAX_ELEMENTS) return AFGAN_FLRELU_BAD_X;
  if (p.up < 1 || p.up > AFGAN_FLRELU_MAX_FACTOR) return AFGAN_FLRELU_BAD_UP;
  if (p.down < 1 || p.down > AFGAN_FLRELU_MAX_FACTOR) return AFGAN_FLRELU_BAD_DOWN;
  const int taps[4] = {p.fu_w, p.fu_h, p.fd_w, p.fd_h};
  for (int i = 0; i < 4; ++i) {
    if (taps[i] < 1 || taps[i] > max_taps) return AFGAN_FLRELU_BAD_FILTER;
  }
  if ((!p.fu_2d && p.fu_w != p.fu_h) || (!p.fd_2d && p.fd_w != p.fd_h)) return AFGAN_FLRELU_BAD_FILTER;
  AfganFlreluStatus s = afgan_check_axis(p.w, p.up, p.down, p.px0, p.px1, p.fu_w, p.fd_w);
  if (s != AFGAN_FLRELU_OK) return s;
  s = afgan_check_axis(p.h, p.up, p.down, p.py0, p.py1, p.fu_h, p.fd_h);
  if (s != AFGAN_FLRELU_OK) return s;
  const int64_t out_w = afgan_out_len(p.w, p.up, p.down, p.px0, p.px1, p.fu_w, p.fd_w);
  const int64_t out_h = afgan_out_len(p.h, p.up, p.down, p.py0, p.py1, p.fu_h, p.fd_h);
  if ((int64_t)p.n * out_h * out_w * p.c > AFGAN_FLRELU_MAX_ELEMENTS) return AFGAN_FLRELU_OUTPUT_TOO_LARGE;
  if (!(p.gain > 0.f) || isinf(p.gain) || !(p.slope >= 0.f) || isinf(p.slope) || isnan(p.clamp)) {
    return AFGAN_FLRELU_BAD_ACTIVATION;
  }
  return AFGAN_FLRELU_OK;
}

static inline const char* afgan_flrelu_error(int code) {
  switch (code) {
    case AFGAN_FLRELU_OK: return "ok";
    case AFGAN_FLRELU_BAD_X:
      return "x must be [N, H, W, C] with H, W, C >= 1, H and W <= 2^24 and at most 2^31 - 1 elements";
    case AFGAN_FLRELU_BAD_UP: return "up must be an int in [1, 64]";
    case AFGAN_FLRELU_BAD_DOWN: return "down must be an int in [1, 64]";
    case AFGAN_FLRELU_BAD_FILTER:
      return "fu and fd must be 1-D [taps] or 2-D [height, width] with 1 to 1024 taps per axis";
    case AFGAN_FLRELU_EMPTY_OUTPUT: return "padding gives an empty output for this input and these filters";
    case AFGAN_FLRELU_BAD_PADDING:
      return "padding must be within [-2^24, 2^24] and the upsampled, padded size at most 2^24";
    case AFGAN_FLRELU_OUTPUT_TOO_LARGE: return "the output would have more than 2^31 - 1 elements";
    case AFGAN_FLRELU_SIGNS_TOO_LARGE:
      return "the signs kept for the gradient (2 bits per element of the upsampled intermediate) would have more "
             "than 2^31 - 1 bytes";
    case AFGAN_FLRELU_BAD_ACTIVATION: return "gain must be finite and > 0, slope finite and >= 0, clamp not NaN";
    case AFGAN_FLRELU_CUDA_ERROR: return "CUDA error";
    case AFGAN_FLRELU_CUDA_FILTERS_TOO_LARGE: return "filters too large for the CUDA kernel";
    case AFGAN_FLRELU_CUDA_SHAPE_TOO_LARGE:
      return "shape too large for the CUDA kernel (batch > 65535 or tiles do not fit in shared memory)";
    default: return "unknown error";
  }
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

// Elementwise activation (its derivative comes from the signs below).
AFGAN_HD float afgan_act(float v, float gain, float slope, float clamp) {
  v = (v >= 0.f ? v : v * slope) * gain;
  if (clamp >= 0.f) v = v > clamp ? clamp : (v < -clamp ? -clamp : v);
  return v;
}

// ---------------------------------------------------------------------------
// Signs: what the gradient needs of the pre-activation v, 2 bits per element of the
// intermediate (after the up filter, before the down filter), written by the forward
// pass when a gradient is wanted. Bit 0: negative, !(v >= 0) (so -0 counts as positive
// and NaN as negative); bit 1: clamped, |act(v)| > clamp (clamp >= 0). act'(v) is then
// gain, gain * slope or 0 (afgan_sign_grad): the derivative of afgan_act, 0 where clamped,
// as the earlier recomputing kernels had it. Layout: uint8 [n, tmp_h, tmp_w, 4 * ceil(c / 16)], i.e. one 32-bit
// (little-endian) word per position and block of 16 channels: channel c's negative bit is
// bit c % 16 of word c / 16 and its clamped bit is bit 16 + c % 16, so that the CPU kernels
// write and read a block's bits as two 16-bit lane masks.
#define AFGAN_SIGN_CHANNELS 16   // Channels per 32-bit word.

AFGAN_HD int afgan_sign_words(const AfganFlreluParams& p) {
  return (p.c + AFGAN_SIGN_CHANNELS - 1) / AFGAN_SIGN_CHANNELS;
}
AFGAN_HD unsigned afgan_sign_code(float v, float gain, float slope, float clamp) {
  unsigned code = v >= 0.f ? 0u : 1u;
  if (clamp >= 0.f) {
    const float a = (v >= 0.f ? v : v * slope) * gain;
    if (a > clamp || a < -clamp) code |= 2u;
  }
  return code;
}
AFGAN_HD float afgan_sign_grad(unsigned code, float gain, float slope) {
  return (code & 2u) ? 0.f : ((code & 1u) ? gain * slope : gain);
}
// The bits of channel c's code in its word, and the code of channel c from its word.
AFGAN_HD unsigned afgan_sign_bits(unsigned code, int c) {
  return ((code & 1u) | ((code & 2u) << 15)) << (c % AFGAN_SIGN_CHANNELS);
}
AFGAN_HD unsigned afgan_sign_unpack(unsigned word, int c) {
  const int k = c % AFGAN_SIGN_CHANNELS;
  return ((word >> k) & 1u) | (((word >> (16 + k)) & 1u) << 1);
}
// Index of the word of channel block `block` at intermediate position (n, y, x); 64-bit.
AFGAN_HD int64_t afgan_sign_word_index(const AfganFlreluParams& p, int n, int y, int x, int block) {
  return ((int64_t(n) * afgan_tmp_h(p) + y) * afgan_tmp_w(p) + x) * afgan_sign_words(p) + block;
}
AFGAN_HD int64_t afgan_sign_bytes(const AfganFlreluParams& p) {
  return int64_t(p.n) * afgan_tmp_h(p) * afgan_tmp_w(p) * afgan_sign_words(p) * 4;
}
// Checks valid parameters for a call that keeps the signs: 0 or AFGAN_FLRELU_SIGNS_TOO_LARGE.
AFGAN_HD int afgan_check_signs(const AfganFlreluParams& p) {
  return afgan_sign_bytes(p) > AFGAN_FLRELU_MAX_SIGN_BYTES ? AFGAN_FLRELU_SIGNS_TOO_LARGE : AFGAN_FLRELU_OK;
}

// Input size along one axis from the intermediate length (the inverse of afgan_tmp_len),
// or -1 when no input size gives that length.
AFGAN_HD int64_t afgan_in_len_from_tmp(int64_t tmp, int64_t up, int64_t p0, int64_t p1, int64_t fu) {
  const int64_t padded = tmp - p0 - p1 + fu - 1;
  if (tmp < 1 || padded < up || padded % up != 0) return -1;
  return padded / up;
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

// Regions of a tile whose outputs start at (oy0, ox0): `last` is the pass (per axis) that produces
// the tile from the intermediate region, the forward up pass rebuilds that region from x, and
// `dy_pass` (gradient only, else NULL) reads dy for it.
AFGAN_HD AfganTileRegions afgan_tile_regions(const AfganPlan& plan, const AfganPass* last, const AfganPass* dy_pass,
                                             int oy0, int oh, int ox0, int ow) {
  AfganTileRegions r;
  r.ry = afgan_input_span(last[1], oy0, oh);
  r.rx = afgan_input_span(last[0], ox0, ow);
  r.iy = afgan_input_span(plan.fwd_up[1], r.ry.lo, r.ry.len);
  r.ix = afgan_input_span(plan.fwd_up[0], r.rx.lo, r.rx.len);
  r.dy = dy_pass ? afgan_input_span(dy_pass[1], r.ry.lo, r.ry.len) : AfganSpan{0, 0};
  r.dx = dy_pass ? afgan_input_span(dy_pass[0], r.rx.lo, r.rx.len) : AfganSpan{0, 0};
  return r;
}

// Regions of the forward tile / the gradient tile whose (y or dx) outputs start at (oy0, ox0).
AFGAN_HD AfganTileRegions afgan_forward_regions(const AfganPlan& plan, int oy0, int oh, int ox0, int ow) {
  return afgan_tile_regions(plan, plan.fwd_down, nullptr, oy0, oh, ox0, ow);
}
AFGAN_HD AfganTileRegions afgan_backward_regions(const AfganPlan& plan, int oy0, int oh, int ox0, int ow) {
  return afgan_tile_regions(plan, plan.bwd_up, plan.bwd_down, oy0, oh, ox0, ow);
}

// Signs a forward tile writes: the first `len` positions, along one axis, of its intermediate
// region. The region starts at the tile's first output times `down` (the down pass has no
// padding); each tile owns `down` positions per output, the last tile along the axis the rest of
// its region. So every intermediate position that an output depends on is written by exactly one
// tile, though neighbouring regions overlap.
AFGAN_HD int afgan_owned_sign_len(AfganSpan region, AfganSpan out, int out_len, int down) {
  if (out.lo + out.len == out_len) return region.len;
  return out.len * down < region.len ? out.len * down : region.len;
}

// The tile [start, start + size) clipped to [0, len).
AFGAN_HD AfganSpan afgan_clip_tile(int start, int size, int len) {
  return AfganSpan{start, size < len - start ? size : len - start};
}

// Largest region sizes (elements per channel) over all tiles of size `tile`: s0 holds
// a loaded source region (x, or dy for the gradient), s1 an x-pass result, s2 the
// intermediate region. 64-bit:
// a region of a large tile of a strongly upsampling call can exceed 2^31. Host only.
struct AfganTileBuffers {
  int64_t s0, s1, s2;
};

static inline AfganTileBuffers afgan_tile_buffers(const AfganFlreluParams& p, const AfganPlan& plan, bool backward,
                                                  int tile) {
  const int rows = backward ? p.h : afgan_out_h(p), cols = backward ? p.w : afgan_out_w(p);
  AfganTileBuffers b{0, 0, 0};
  auto up = [](int64_t* v, int64_t x) { *v = x > *v ? x : *v; };
  for (int ty = 0; ty < rows; ty += tile) {
    for (int tx = 0; tx < cols; tx += tile) {
      const int th = tile < rows - ty ? tile : rows - ty, tw = tile < cols - tx ? tile : cols - tx;
      const AfganTileRegions r = backward ? afgan_backward_regions(plan, ty, th, tx, tw)
                                          : afgan_forward_regions(plan, ty, th, tx, tw);
      // The forward loads x; the gradient loads dy only (the signs replace x).
      if (!backward) up(&b.s0, int64_t(r.iy.len) * r.ix.len);
      up(&b.s0, int64_t(r.dy.len) * r.dx.len);
      // x passes: the up / transposed-down passes give [source rows][tmp cols], the last [tmp rows][tile cols].
      if (!backward) up(&b.s1, int64_t(r.iy.len) * r.rx.len);
      up(&b.s1, int64_t(r.dy.len) * r.rx.len);
      up(&b.s1, int64_t(r.ry.len) * tw);
      up(&b.s2, int64_t(r.ry.len) * r.rx.len);
    }
  }
  return b;
}

// Number of taps of the up / down filter.
AFGAN_HD int afgan_fu_count(const AfganFlreluParams& p) { return p.fu_2d ? p.fu_w * p.fu_h : p.fu_w; }
AFGAN_HD int afgan_fd_count(const AfganFlreluParams& p) { return p.fd_2d ? p.fd_w * p.fd_h : p.fd_w; }

// Prepares the taps of every pass from the raw filters (host memory): the up taps are
// scaled by the upsampling gain (up per axis), and the forward taps are flipped unless
// flip_filter (convolution); the gradient uses the reversed forward taps. Reversing a
// row-major [h][w] array flips both axes. Outputs hold afgan_fu_count / afgan_fd_count floats.
static inline void afgan_prepare_taps(const AfganFlreluParams& p, const float* fu, const float* fd, float* up,
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

#endif  // AFGAN_FILTERED_LRELU_H_
