// Fused CUDA kernels of the filtered leaky ReLU (forward and gradient).
//
// One thread block computes one output tile of one image for kCh channels: it loads
// the input region the tile depends on into shared memory, runs every resampling pass
// there (upsampling filter, activation, downsampling filter), and writes only the
// tile, so no intermediate tensor goes through global memory. threadIdx.x indexes
// channels (NHWC: neighbouring threads read neighbouring floats), threadIdx.y pixels.
// When a gradient is wanted the forward kernel also writes the signs of the intermediate
// (2 bits per element, filtered_lrelu.h), each position from the one tile that owns it.
// The gradient kernel does the same for a tile of dx: it applies the transposed passes
// to dy and multiplies by the activation's derivative read from the signs on the way,
// without x. Filter taps live in constant memory.
//
// This file needs CUDA only (no TensorFlow); entry points in filtered_lrelu_cuda.h.
// Compiled with -DAFGAN_CUDA_EMULATION by a host compiler, it runs on the CPU through
// cuda_emulation.h (for tests without a GPU).

#include <algorithm>
#include <cstdio>
#include <vector>

#include "filtered_lrelu.h"
#include "filtered_lrelu_cuda.h"

namespace {

constexpr int kCh = 8;            // Channels per block (threadIdx.x).
constexpr int kPix = 32;          // Threads over pixels (threadIdx.y).
constexpr int kMaxTaps = 8192;    // Constant-memory capacity for all four tap arrays.
constexpr int kMaxSmemBytes = 96 * 1024;

__constant__ float c_taps[kMaxTaps];

thread_local char g_last_error[256] = "";

#ifdef AFGAN_CUDA_EMULATION
#define AFGAN_DYNAMIC_SMEM(name) float* name = ::smem
#define AFGAN_LAUNCH(kernel, grid, block, bytes, stream, ...) EmuLaunch(kernel, grid, block, bytes, __VA_ARGS__)
#else
#define AFGAN_DYNAMIC_SMEM(name) extern __shared__ float name[]
#define AFGAN_LAUNCH(kernel, grid, block, bytes, stream, ...) kernel<<<grid, block, bytes, stream>>>(__VA_ARGS__)
#endif

// Offsets of the prepared taps in c_taps.
struct TapOffsets {
  int up, up_rev, down, down_rev;
};

// Shared-memory layout: s0 (loaded source), s1 (after the x pass), s2 (tmp region).
struct SmemLayout {
  int s1, s2, total;   // Offsets and total, in floats per channel.
};

// ---------------------------------------------------------------------------
// Device passes over shared memory ([rows][cols][kCh], channel innermost).

// Loads src[n, span_y, span_x, c] (+ bias) into dst; channels >= C load as 0.
__device__ void LoadBlock(const float* __restrict__ src, const float* __restrict__ bias, int rows, int cols,
                          int channels, int n, int c, AfganSpan sy, AfganSpan sx, float* dst) {
  const bool valid = c < channels;
  const float b = (valid && bias != nullptr) ? bias[c] : 0.f;
  for (int e = threadIdx.y; e < sy.len * sx.len; e += kPix) {
    const int r = e / sx.len, col = e % sx.len;
    float v = 0.f;
    if (valid) {
      const long long idx = ((static_cast<long long>(n) * rows + sy.lo + r) * cols + sx.lo + col) * channels + c;
      v = src[idx] + b;
    }
    dst[e * kCh + threadIdx.x] = v;
  }
}

// x pass: src [rows][src_x.len] -> dst [rows][out.len].
__device__ void PassX(const float* src, int rows, AfganSpan src_x, const AfganPass& s, const float* g, AfganSpan out,
                      float* dst) {
  for (int e = threadIdx.y; e < rows * out.len; e += kPix) {
    const int r = e / out.len, o = e % out.len + out.lo;
    float acc = 0.f;
    int t0, t1, i;
    if (afgan_tap_range(s, o, &t0, &t1, &i)) {
      const float* row = src + (r * src_x.len - src_x.lo) * kCh + threadIdx.x;
      for (int t = t0; t < t1; t += s.up, ++i) acc += row[i * kCh] * g[t];
    }
    dst[e * kCh + threadIdx.x] = acc;
  }
}

// y pass (or 2-D pass when g2d): src [src_y.len][src_x.len] -> out rows `out_y` x cols `out_x`
// (for the y pass, src columns are already the output columns). Store(r, col, value) takes
// indices relative to the output spans.
template <typename Store>
__device__ void PassY(const float* src, AfganSpan src_y, AfganSpan src_x, const AfganPass& sy, const AfganPass& sx,
                      const float* g, bool g2d, AfganSpan out_y, AfganSpan out_x, Store store) {
  for (int e = threadIdx.y; e < out_y.len * out_x.len; e += kPix) {
    const int r = e / out_x.len, col = e % out_x.len;
    float acc = 0.f;
    int ty0, ty1, iy;
    if (afgan_tap_range(sy, r + out_y.lo, &ty0, &ty1, &iy)) {
      if (!g2d) {
        const float* base = src + col * kCh + threadIdx.x;
        for (int t = ty0; t < ty1; t += sy.up, ++iy) acc += base[(iy - src_y.lo) * src_x.len * kCh] * g[t];
      } else {
        int tx0, tx1, ix0;
        if (afgan_tap_range(sx, col + out_x.lo, &tx0, &tx1, &ix0)) {
          for (int ty = ty0; ty < ty1; ty += sy.up, ++iy) {
            const float* row = src + ((iy - src_y.lo) * src_x.len - src_x.lo) * kCh + threadIdx.x;
            const float* g_row = g + ty * sx.taps;
            int ix = ix0;
            for (int tx = tx0; tx < tx1; tx += sx.up, ++ix) acc += row[ix * kCh] * g_row[tx];
          }
        }
      }
    }
    store(r, col, acc);
  }
}

// Runs the two passes (x then y, or one 2-D pass) from s0 (region src_y x src_x) into
// Store over out_y x out_x; s1 holds the x-pass result.
template <typename Store>
__device__ void TwoPass(const float* s0, float* s1, AfganSpan src_y, AfganSpan src_x, const AfganPass* passes,
                        const float* g, bool g2d, AfganSpan out_y, AfganSpan out_x, Store store) {
  if (g2d) {
    PassY(s0, src_y, src_x, passes[1], passes[0], g, true, out_y, out_x, store);
    return;
  }
  PassX(s0, src_y.len, src_x, passes[0], g, out_x, s1);
  __syncthreads();
  PassY(s1, src_y, out_x, passes[1], passes[0], g, false, out_y, out_x, store);
}

__global__ void ForwardKernel(AfganFlreluParams p, AfganPlan plan, TapOffsets to, int tile_h, int tile_w,
                              int tiles_x, SmemLayout layout, const float* __restrict__ x,
                              const float* __restrict__ bias, float* __restrict__ y, unsigned* __restrict__ signs) {
  AFGAN_DYNAMIC_SMEM(smem);
  float* s0 = smem;
  float* s1 = smem + layout.s1 * kCh;
  float* s2 = smem + layout.s2 * kCh;
  const int c = blockIdx.y * kCh + threadIdx.x, n = blockIdx.z;
  const int out_h = afgan_out_h(p), out_w = afgan_out_w(p);
  const AfganSpan oy = afgan_clip_tile((blockIdx.x / tiles_x) * tile_h, tile_h, out_h);
  const AfganSpan ox = afgan_clip_tile((blockIdx.x % tiles_x) * tile_w, tile_w, out_w);
  const AfganTileRegions r = afgan_forward_regions(plan, oy.lo, oy.len, ox.lo, ox.len);

  LoadBlock(x, bias, p.h, p.w, p.c, n, c, r.iy, r.ix, s0);
  __syncthreads();
  // Pre-activation over the tmp region, activated as it is stored (and the signs of the part of
  // the region this tile owns written: 16 channels share a word, two blocks of kCh, so atomicOr).
  const bool valid = c < p.c;
  const int own_h = afgan_owned_sign_len(r.ry, oy, out_h, p.down);
  const int own_w = afgan_owned_sign_len(r.rx, ox, out_w, p.down);
  TwoPass(s0, s1, r.iy, r.ix, plan.fwd_up, c_taps + to.up, p.fu_2d, r.ry, r.rx, [&](int i, int j, float v) {
    s2[(i * r.rx.len + j) * kCh + threadIdx.x] = afgan_act(v, p.gain, p.slope, p.clamp);
    if (signs != nullptr && valid && i < own_h && j < own_w) {
      const unsigned code = afgan_sign_code(v, p.gain, p.slope, p.clamp);
      if (code != 0u) {
        atomicOr(signs + afgan_sign_word_index(p, n, r.ry.lo + i, r.rx.lo + j, c / AFGAN_SIGN_CHANNELS),
                 afgan_sign_bits(code, c));
      }
    }
  });
  __syncthreads();
  TwoPass(s2, s1, r.ry, r.rx, plan.fwd_down, c_taps + to.down, p.fd_2d, oy, ox, [&](int i, int j, float v) {
    if (valid) y[((static_cast<long long>(n) * out_h + oy.lo + i) * out_w + ox.lo + j) * p.c + c] = v;
  });
}

__global__ void BackwardKernel(AfganFlreluParams p, AfganPlan plan, TapOffsets to, int tile_h, int tile_w,
                               int tiles_x, SmemLayout layout, const float* __restrict__ dy,
                               const unsigned* __restrict__ signs, float* __restrict__ dx) {
  AFGAN_DYNAMIC_SMEM(smem);
  float* s0 = smem;
  float* s1 = smem + layout.s1 * kCh;
  float* s2 = smem + layout.s2 * kCh;
  const int c = blockIdx.y * kCh + threadIdx.x, n = blockIdx.z;
  const AfganSpan oy = afgan_clip_tile((blockIdx.x / tiles_x) * tile_h, tile_h, p.h);
  const AfganSpan ox = afgan_clip_tile((blockIdx.x % tiles_x) * tile_w, tile_w, p.w);
  const AfganTileRegions r = afgan_backward_regions(plan, oy.lo, oy.len, ox.lo, ox.len);

  // G = (transposed down pass of dy) * act'(pre-activation, from the signs) over the tmp region.
  const bool valid = c < p.c;
  LoadBlock(dy, nullptr, afgan_out_h(p), afgan_out_w(p), p.c, n, c, r.dy, r.dx, s0);
  __syncthreads();
  TwoPass(s0, s1, r.dy, r.dx, plan.bwd_down, c_taps + to.down_rev, p.fd_2d, r.ry, r.rx, [&](int i, int j, float v) {
    float d = 0.f;   // Channels past C load dy as 0 and stay 0.
    if (valid) {
      const unsigned word = signs[afgan_sign_word_index(p, n, r.ry.lo + i, r.rx.lo + j, c / AFGAN_SIGN_CHANNELS)];
      d = afgan_sign_grad(afgan_sign_unpack(word, c), p.gain, p.slope);
    }
    s2[(i * r.rx.len + j) * kCh + threadIdx.x] = v * d;
  });
  __syncthreads();
  // dx = transposed up pass of G.
  TwoPass(s2, s1, r.ry, r.rx, plan.bwd_up, c_taps + to.up_rev, p.fu_2d, oy, ox, [&](int i, int j, float v) {
    if (valid) dx[((static_cast<long long>(n) * p.h + oy.lo + i) * p.w + ox.lo + j) * p.c + c] = v;
  });
}

// ---------------------------------------------------------------------------
// Host side.

int Fail(int code, const char* what, cudaError_t err = cudaSuccess) {
  std::snprintf(g_last_error, sizeof(g_last_error), "%s%s%s", what, err != cudaSuccess ? ": " : "",
                err != cudaSuccess ? cudaGetErrorString(err) : "");
  return code;
}

// 0 when `p` is given and valid, else the failure (recorded for afgan_flrelu_cuda_last_error).
int CheckParams(const AfganFlreluParams* p) {
  if (p == nullptr) return Fail(AFGAN_FLRELU_BAD_X, "params is NULL");
  const int code = afgan_check_params(*p);
  return code == AFGAN_FLRELU_OK ? code : Fail(code, afgan_flrelu_error(code));
}

// Forward (x, b -> out = y, and the signs when `signs` is not NULL) or gradient (dy, signs -> out = dx).
int Launch(const AfganFlreluParams* pp, const float* dy, const float* x, const float* b, const float* fu,
           const float* fd, float* out, uint8_t* signs, cudaStream_t stream, bool backward) {
  const int code = CheckParams(pp);
  if (code != AFGAN_FLRELU_OK) return code;
  const AfganFlreluParams p = *pp;
  if (p.n == 0) return AFGAN_FLRELU_OK;
  const int64_t channel_groups = (int64_t(p.c) + kCh - 1) / kCh;
  if (p.n > 65535 || channel_groups > 65535) {
    return Fail(AFGAN_FLRELU_CUDA_SHAPE_TOO_LARGE, afgan_flrelu_error(AFGAN_FLRELU_CUDA_SHAPE_TOO_LARGE));
  }
  const int nu = afgan_fu_count(p), nd = afgan_fd_count(p);   // <= 1024 * 1024 each (checked).
  if (2 * (int64_t(nu) + nd) > kMaxTaps) {
    return Fail(AFGAN_FLRELU_CUDA_FILTERS_TOO_LARGE, afgan_flrelu_error(AFGAN_FLRELU_CUDA_FILTERS_TOO_LARGE));
  }

  std::vector<float> taps(2 * (nu + nd));
  const TapOffsets to{0, nu, 2 * nu, 2 * nu + nd};
  afgan_prepare_taps(p, fu, fd, &taps[to.up], &taps[to.up_rev], &taps[to.down], &taps[to.down_rev]);
  cudaError_t err = cudaMemcpyToSymbolAsync(c_taps, taps.data(), taps.size() * sizeof(float), 0,
                                            cudaMemcpyHostToDevice, stream);
  if (err != cudaSuccess) return Fail(AFGAN_FLRELU_CUDA_ERROR, "copying filter taps", err);

  if (signs != nullptr && afgan_check_signs(p) != AFGAN_FLRELU_OK) {
    return Fail(AFGAN_FLRELU_SIGNS_TOO_LARGE, afgan_flrelu_error(AFGAN_FLRELU_SIGNS_TOO_LARGE));
  }
  if (!backward && signs != nullptr) {
    err = cudaMemsetAsync(signs, 0, size_t(afgan_sign_bytes(p)), stream);
    if (err != cudaSuccess) return Fail(AFGAN_FLRELU_CUDA_ERROR, "clearing the signs", err);
  }

  const AfganPlan plan = afgan_make_plan(p);
  const int rows = backward ? p.h : afgan_out_h(p), cols = backward ? p.w : afgan_out_w(p);
  for (int tile : {16, 8, 4, 2, 1}) {
    const AfganTileBuffers need = afgan_tile_buffers(p, plan, backward, tile);
    const int64_t total = need.s0 + need.s1 + need.s2;   // Floats per channel, 64-bit.
    const int64_t bytes = total * kCh * int64_t(sizeof(float));
    if (bytes > kMaxSmemBytes) continue;
    const SmemLayout layout{int(need.s0), int(need.s0 + need.s1), int(total)};
    const int64_t tiles_x = (int64_t(cols) + tile - 1) / tile, tiles_y = (int64_t(rows) + tile - 1) / tile;
    if (tiles_x * tiles_y > 2147483647LL) continue;   // gridDim.x limit.
    const dim3 grid(unsigned(tiles_x * tiles_y), unsigned(channel_groups), unsigned(p.n)), block(kCh, kPix);
    if (backward) {
      cudaFuncSetAttribute(BackwardKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kMaxSmemBytes);
      AFGAN_LAUNCH(BackwardKernel, grid, block, size_t(bytes), stream, p, plan, to, tile, tile, int(tiles_x), layout,
                   dy, reinterpret_cast<const unsigned*>(signs), out);
    } else {
      cudaFuncSetAttribute(ForwardKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kMaxSmemBytes);
      AFGAN_LAUNCH(ForwardKernel, grid, block, size_t(bytes), stream, p, plan, to, tile, tile, int(tiles_x), layout,
                   x, b, out, reinterpret_cast<unsigned*>(signs));
    }
    err = cudaGetLastError();
    return err == cudaSuccess ? AFGAN_FLRELU_OK : Fail(AFGAN_FLRELU_CUDA_ERROR, "kernel launch", err);
  }
  return Fail(AFGAN_FLRELU_CUDA_SHAPE_TOO_LARGE, afgan_flrelu_error(AFGAN_FLRELU_CUDA_SHAPE_TOO_LARGE));
}

}  // namespace

extern "C" int afgan_flrelu_cuda_forward(const AfganFlreluParams* p, const float* x, const float* b, const float* fu,
                                         const float* fd, float* y, uint8_t* signs, cudaStream_t stream) {
  return Launch(p, nullptr, x, b, fu, fd, y, signs, stream, false);
}

extern "C" int afgan_flrelu_cuda_backward(const AfganFlreluParams* p, const float* dy, const uint8_t* signs,
                                          const float* fu, const float* fd, float* dx, cudaStream_t stream) {
  if (signs == nullptr) return Fail(AFGAN_FLRELU_BAD_X, "signs is NULL (run the forward with signs)");
  return Launch(p, dy, nullptr, nullptr, fu, fd, dx, const_cast<uint8_t*>(signs), stream, true);
}

extern "C" const char* afgan_flrelu_cuda_last_error(void) { return g_last_error; }

extern "C" int afgan_flrelu_output_shape(const AfganFlreluParams* p, int64_t* shape) {
  const int code = CheckParams(p);
  if (code != AFGAN_FLRELU_OK) return code;
  shape[0] = p->n;
  shape[1] = afgan_out_h(*p);
  shape[2] = afgan_out_w(*p);
  shape[3] = p->c;
  return AFGAN_FLRELU_OK;
}

extern "C" int afgan_flrelu_signs_shape(const AfganFlreluParams* p, int64_t* shape) {
  const int code = CheckParams(p);
  if (code != AFGAN_FLRELU_OK) return code;
  shape[0] = p->n;
  shape[1] = afgan_tmp_h(*p);
  shape[2] = afgan_tmp_w(*p);
  shape[3] = 4 * afgan_sign_words(*p);
  return AFGAN_FLRELU_OK;
}
