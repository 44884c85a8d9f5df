// The data movement of a ResNet on channels-last (NHWC) feature maps, where
// a convolution is one matrix product: pixels are rows, channels columns.
//
// im2col_nhwc: the (batch·oh·ow, k·k·c) patch matrix of a k x k convolution
// with the given stride and zero padding; column (ky·k + kx)·c + ci holds
// input channel ci at tap (ky, kx), the order of a (c_out, k, k, c_in)
// weight. One block per output pixel, threads striding over its columns.
//
// avg_pool_nhwc: the mean of each s x s window (stride s, no padding, the
// rows and columns past the last whole window dropped, as torch's
// AvgPool2d(s) and candle's avg_pool2d(s) do). One block per output pixel,
// threads striding over channels.
//
// A 1x1 convolution with stride 1 needs neither: its input already is the
// matrix. Indices within a row are 32-bit (rows hold at most k·k·c
// elements); row offsets are 64-bit.
#include "element_types.cuh"

template <typename T>
__device__ void im2col_nhwc(const T* x, T* col, int height, int width, int channels,
                            int kernel, int stride, int padding, int out_height,
                            int out_width) {
  const int pixel = blockIdx.x;  // (image, oy, ox) flattened
  const int image = pixel / (out_height * out_width);
  const int oy = pixel / out_width % out_height;
  const int ox = pixel % out_width;
  const int columns = kernel * kernel * channels;
  T* dst = col + static_cast<size_t>(pixel) * columns;
  const T* src = x + static_cast<size_t>(image) * height * width * channels;
  for (int i = threadIdx.x; i < columns; i += blockDim.x) {
    const int ci = i % channels;
    const int tap = i / channels;
    const int iy = oy * stride - padding + tap / kernel;
    const int ix = ox * stride - padding + tap % kernel;
    const bool inside = iy >= 0 && iy < height && ix >= 0 && ix < width;
    dst[i] = inside ? src[(static_cast<size_t>(iy) * width + ix) * channels + ci]
                    : from_f32<T>(0.0f);
  }
}

template <typename T>
__device__ void avg_pool_nhwc(const T* x, T* out, int height, int width, int channels,
                              int size, int out_height, int out_width) {
  const int pixel = blockIdx.x;
  const int image = pixel / (out_height * out_width);
  const int oy = pixel / out_width % out_height;
  const int ox = pixel % out_width;
  const T* src = x + static_cast<size_t>(image) * height * width * channels;
  T* dst = out + static_cast<size_t>(pixel) * channels;
  const float scale = 1.0f / (size * size);
  for (int c = threadIdx.x; c < channels; c += blockDim.x) {
    float sum = 0.0f;
    for (int dy = 0; dy < size; ++dy) {
      const size_t row = static_cast<size_t>(oy * size + dy) * width;
      for (int dx = 0; dx < size; ++dx) {
        sum += to_f32(src[(row + ox * size + dx) * channels + c]);
      }
    }
    dst[c] = from_f32<T>(sum * scale);
  }
}

#define CHANNELS_LAST(T, SUFFIX)                                                               \
  extern "C" __global__ void im2col_nhwc_##SUFFIX(const T* x, T* col, int height, int width,  \
                                                  int channels, int kernel, int stride,       \
                                                  int padding, int out_height,                \
                                                  int out_width) {                            \
    im2col_nhwc<T>(x, col, height, width, channels, kernel, stride, padding, out_height,      \
                   out_width);                                                                \
  }                                                                                           \
  extern "C" __global__ void avg_pool_nhwc_##SUFFIX(const T* x, T* out, int height, int width, \
                                                    int channels, int size, int out_height,   \
                                                    int out_width) {                          \
    avg_pool_nhwc<T>(x, out, height, width, channels, size, out_height, out_width);           \
  }

CHANNELS_LAST(float, f32)
#ifdef __CUDACC__
CHANNELS_LAST(__half, f16)
CHANNELS_LAST(__nv_bfloat16, bf16)
#endif
