// Multi-head self-attention straight from the packed q/k/v projection, one
// kernel per layer: no head split or merge copies, no score tensor in
// memory, the softmax in f32 whatever the model's dtype.
//
// qkv is (batch, tokens, 3, heads, HD) row-major: each token's row holds q,
// then k, then v, each head-major, with q already scaled by HD^-1/2 (the
// encoder packs and scales the projection at load time). out is (batch,
// tokens, heads, HD), the layout the output projection reads. mask is an
// optional additive f32 (tokens, tokens) matrix (the text tower's causal
// mask), a null pointer when absent.
//
// grid = (ceil(tokens / blockDim.x), heads, batch); each thread owns one
// query row: its q and its running output stay in registers while the
// block walks the keys in tiles of KEY_TILE, staged in shared memory as f32.
// The softmax is the one-pass "online" form (running maximum m and sum l,
// the output rescaled when the maximum grows), so every score is computed
// once and never stored. Keys whose mask is -inf are skipped.
#include "element_types.cuh"

constexpr int KEY_TILE = 32;

template <typename T, int HD>
__device__ void packed_attention(const T* qkv, const float* mask, T* out, int tokens,
                                 int heads) {
  __shared__ float keys[KEY_TILE * HD];
  __shared__ float values[KEY_TILE * HD];
  const int image = blockIdx.z;
  const int head = blockIdx.y;
  const int query = blockIdx.x * blockDim.x + threadIdx.x;
  const bool active = query < tokens;
  const size_t width = static_cast<size_t>(heads) * HD;
  const size_t token_stride = 3 * width;
  const T* rows = qkv + static_cast<size_t>(image) * tokens * token_stride;
  const size_t head_offset = static_cast<size_t>(head) * HD;

  float q[HD];
  float acc[HD];
  float running_max = -INFINITY;
  float running_sum = 0.0f;
  for (int d = 0; d < HD; ++d) {
    q[d] = active ? to_f32(rows[query * token_stride + head_offset + d]) : 0.0f;
    acc[d] = 0.0f;
  }

  for (int first = 0; first < tokens; first += KEY_TILE) {
    const int count = min(KEY_TILE, tokens - first);
    __syncthreads();  // every thread is done with the previous tile
    for (int i = threadIdx.x; i < count * HD; i += blockDim.x) {
      const int j = i / HD;
      const int d = i % HD;
      const T* row = rows + (first + j) * token_stride + head_offset + d;
      keys[i] = to_f32(row[width]);
      values[i] = to_f32(row[2 * width]);
    }
    __syncthreads();
    if (!active) {
      continue;
    }
    for (int j = 0; j < count; ++j) {
      float score = 0.0f;
      for (int d = 0; d < HD; ++d) {
        score += q[d] * keys[j * HD + d];
      }
      if (mask) {
        score += mask[static_cast<size_t>(query) * tokens + first + j];
      }
      if (score == -INFINITY) {
        continue;
      }
      if (score > running_max) {
        // exp(-inf) = 0: the first key resets the empty sums to zero.
        const float rescale = expf(running_max - score);
        running_sum *= rescale;
        for (int d = 0; d < HD; ++d) {
          acc[d] *= rescale;
        }
        running_max = score;
      }
      const float p = expf(score - running_max);
      running_sum += p;
      for (int d = 0; d < HD; ++d) {
        acc[d] += p * values[j * HD + d];
      }
    }
  }

  if (active) {
    // A row with every key masked has nothing to attend to: zeros, not NaN.
    const float inv = running_sum > 0.0f ? 1.0f / running_sum : 0.0f;
    T* dst = out + (static_cast<size_t>(image) * tokens + query) * width + head_offset;
    for (int d = 0; d < HD; ++d) {
      dst[d] = from_f32<T>(acc[d] * inv);
    }
  }
}

#define PACKED_ATTENTION(T, SUFFIX, HD)                                                      \
  extern "C" __global__ void packed_attention_##SUFFIX##_##HD(                                \
      const T* qkv, const float* mask, T* out, int tokens, int heads) {                       \
    packed_attention<T, HD>(qkv, mask, out, tokens, heads);                                  \
  }
#define PACKED_ATTENTION_ALL_HEAD_DIMS(T, SUFFIX) \
  PACKED_ATTENTION(T, SUFFIX, 4)                  \
  PACKED_ATTENTION(T, SUFFIX, 8)                  \
  PACKED_ATTENTION(T, SUFFIX, 16)                 \
  PACKED_ATTENTION(T, SUFFIX, 32)                 \
  PACKED_ATTENTION(T, SUFFIX, 64)

PACKED_ATTENTION_ALL_HEAD_DIMS(float, f32)
#ifdef __CUDACC__
PACKED_ATTENTION_ALL_HEAD_DIMS(__half, f16)
PACKED_ATTENTION_ALL_HEAD_DIMS(__nv_bfloat16, bf16)
#endif
