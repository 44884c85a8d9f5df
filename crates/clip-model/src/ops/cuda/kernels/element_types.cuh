// The element types the encoder runs in on the GPU (f32, f16, bf16) and
// their conversions to and from f32, in which every kernel here computes.
//
// Under nvcc this is CUDA; any other C++20 compiler gets the definitions of
// this crate's tests/cuda_sim/cuda_sim.h instead, so the test suite can run
// the kernels' logic (indexing, tiling, the online softmax) on a machine
// with no GPU.
#pragma once

#ifdef __CUDACC__
#include <cuda_bf16.h>
#include <cuda_fp16.h>

__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_f32(__nv_bfloat16 x) { return __bfloat162float(x); }

template <typename T> __device__ __forceinline__ T from_f32(float x);
template <> __device__ __forceinline__ float from_f32<float>(float x) { return x; }
template <> __device__ __forceinline__ __half from_f32<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}
#else
#include "cuda_sim.h"
#endif
