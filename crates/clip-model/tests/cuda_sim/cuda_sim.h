// Just enough of CUDA to run this crate's kernels (crates/clip-model/src/ops/cuda/kernels/*.cu)
// on the CPU in the test suite: each block's threads are OS threads that
// meet at a barrier in __syncthreads(), blocks run one after another, and
// __shared__ arrays are function statics (one copy, used by one block at a
// time). It checks the kernels' logic, not their speed or their f16/bf16
// conversions (only f32 instances are compiled here); nvcc compiles the
// real thing in the `cuda` build.
#pragma once

#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstddef>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static

struct dim3 {
  unsigned int x = 1, y = 1, z = 1;
};

inline thread_local dim3 threadIdx;
inline thread_local dim3 blockIdx;
inline dim3 blockDim;
inline dim3 gridDim;
inline std::barrier<>* block_barrier = nullptr;

inline void __syncthreads() { block_barrier->arrive_and_wait(); }

using std::min;

inline float to_f32(float x) { return x; }
template <typename T> T from_f32(float x);
template <> inline float from_f32<float>(float x) { return x; }

// Runs `kernel` (a callable taking no arguments that calls the kernel with
// its arguments) over `grid` x `block`.
inline void launch(dim3 grid, dim3 block, const std::function<void()>& kernel) {
  gridDim = grid;
  blockDim = block;
  const unsigned int threads = block.x * block.y * block.z;
  for (unsigned int bz = 0; bz < grid.z; ++bz)
    for (unsigned int by = 0; by < grid.y; ++by)
      for (unsigned int bx = 0; bx < grid.x; ++bx) {
        std::barrier<> barrier(threads);
        block_barrier = &barrier;
        std::vector<std::thread> pool;
        pool.reserve(threads);
        for (unsigned int tz = 0; tz < block.z; ++tz)
          for (unsigned int ty = 0; ty < block.y; ++ty)
            for (unsigned int tx = 0; tx < block.x; ++tx)
              pool.emplace_back([&, tx, ty, tz, bx, by, bz] {
                threadIdx = dim3{tx, ty, tz};
                blockIdx = dim3{bx, by, bz};
                kernel();
              });
        for (auto& t : pool) t.join();
        block_barrier = nullptr;
      }
}
