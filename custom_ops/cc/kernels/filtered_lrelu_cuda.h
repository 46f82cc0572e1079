// C entry points of the CUDA filtered leaky ReLU kernels. No TensorFlow needed:
// the TensorFlow GPU kernel calls these with its stream, and the standalone library
// (libafgan_flrelu_cuda.so) exposes them to ctypes for tests and timing.
//
// Pointers x, b, dy, y, dx, signs are device memory (NHWC float32); fu and fd are the raw
// filters in host memory (afgan_fu_count / afgan_fd_count floats). Calls are
// asynchronous on `stream`. They return 0, or a negative AfganFlreluStatus
// (afgan_flrelu_error describes it; afgan_flrelu_cuda_last_error gives the message,
// with the CUDA error for AFGAN_FLRELU_CUDA_ERROR).

#ifndef AFGAN_FILTERED_LRELU_CUDA_H_
#define AFGAN_FILTERED_LRELU_CUDA_H_

#ifdef AFGAN_CUDA_EMULATION
#include "cuda_emulation.h"   // CPU emulation for tests on machines without a GPU.
#else
#include <cuda_runtime.h>
#endif

#include "filtered_lrelu.h"

#ifdef __cplusplus
extern "C" {
#endif

// y = filtered_lrelu(x); with `signs` (device memory, afgan_sign_bytes, 4-byte aligned; NULL:
// none) also the intermediate's signs for the gradient (cleared first, on the stream).
int afgan_flrelu_cuda_forward(const AfganFlreluParams* p, const float* x, const float* b, const float* fu,
                              const float* fd, float* y, uint8_t* signs, cudaStream_t stream);

// dx for upstream gradient dy from the forward's signs (the bias gradient is the sum of dx
// over N, H, W).
int afgan_flrelu_cuda_backward(const AfganFlreluParams* p, const float* dy, const uint8_t* signs, const float* fu,
                               const float* fd, float* dx, cudaStream_t stream);

// The message of the last failure of a call on this thread (the CUDA error for -6).
const char* afgan_flrelu_cuda_last_error(void);

// Checks the parameters (afgan_check_params) and writes the output shape [n, h, w, c].
int afgan_flrelu_output_shape(const AfganFlreluParams* p, int64_t* shape);

// Checks the parameters and writes the shape of the signs, [n, tmp_h, tmp_w, bytes] (uint8).
int afgan_flrelu_signs_shape(const AfganFlreluParams* p, int64_t* shape);

#ifdef __cplusplus
}
#endif

#endif  // AFGAN_FILTERED_LRELU_CUDA_H_
