// A minimal CPU emulation of the CUDA features filtered_lrelu_kernels.cu.cc uses, so
// that the very same kernel source can be compiled by g++ and tested on machines
// without a GPU (tests/test_cuda_emulation.py). Every block runs its threads as real
// std::threads that meet at a barrier for __syncthreads(); "device memory" is host
// memory. This checks the kernels' logic (tiling, regions, shared-memory layout,
// synchronisation), not their performance.

#ifndef AFGAN_CUDA_EMULATION_H_
#define AFGAN_CUDA_EMULATION_H_

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __constant__
#define __shared__

using std::max;
using std::min;

struct dim3 {
  unsigned x, y, z;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

typedef int cudaError_t;
typedef void* cudaStream_t;
constexpr cudaError_t cudaSuccess = 0;
enum { cudaMemcpyHostToDevice = 1, cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };

inline thread_local dim3 threadIdx, blockIdx;
inline float smem[1 << 16];   // The block's dynamic shared memory (256 KiB).

// A reusable barrier for the threads of one block.
class EmuBarrier {
 public:
  void Reset(int count) {
    count_ = count;
    waiting_ = 0;
  }
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    const unsigned long gen = generation_;
    if (++waiting_ == count_) {
      waiting_ = 0;
      ++generation_;
      cv_.notify_all();
    } else {
      cv_.wait(lock, [&] { return gen != generation_; });
    }
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int count_ = 1, waiting_ = 0;
  unsigned long generation_ = 0;
};

inline EmuBarrier emu_barrier;
inline void __syncthreads() { emu_barrier.Wait(); }

inline const char* cudaGetErrorString(cudaError_t) { return "emulated CUDA error"; }
inline unsigned atomicOr(unsigned* address, unsigned value) { return __atomic_fetch_or(address, value, __ATOMIC_RELAXED); }
inline cudaError_t cudaMemsetAsync(void* ptr, int value, size_t bytes, cudaStream_t) {
  std::memset(ptr, value, bytes);
  return cudaSuccess;
}
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
template <typename T>
inline cudaError_t cudaFuncSetAttribute(T, int, int) { return cudaSuccess; }
template <typename T, size_t N>
inline cudaError_t cudaMemcpyToSymbolAsync(T (&symbol)[N], const void* src, size_t bytes, size_t offset, int,
                                           cudaStream_t) {
  std::memcpy(reinterpret_cast<char*>(symbol) + offset, src, bytes);
  return cudaSuccess;
}

// Runs kernel(args...) for every block of `grid`, each block's threads concurrently.
template <typename Kernel, typename... Args>
void EmuLaunch(Kernel kernel, dim3 grid, dim3 block, size_t smem_bytes, Args... args) {
  if (smem_bytes > sizeof(smem)) throw std::runtime_error("emulated shared memory too small");
  const int threads = block.x * block.y * block.z;
  for (unsigned bz = 0; bz < grid.z; ++bz) {
    for (unsigned by = 0; by < grid.y; ++by) {
      for (unsigned bx = 0; bx < grid.x; ++bx) {
        std::fill(smem, smem + smem_bytes / sizeof(float), 1e30f);   // Poison: reads of unwritten smem show up.
        emu_barrier.Reset(threads);
        std::vector<std::thread> pool;
        for (unsigned tz = 0; tz < block.z; ++tz) {
          for (unsigned ty = 0; ty < block.y; ++ty) {
            for (unsigned tx = 0; tx < block.x; ++tx) {
              pool.emplace_back([=] {
                threadIdx = dim3(tx, ty, tz);
                blockIdx = dim3(bx, by, bz);
                kernel(args...);
              });
            }
          }
        }
        for (auto& t : pool) t.join();
      }
    }
  }
}

#endif  // AFGAN_CUDA_EMULATION_H_
