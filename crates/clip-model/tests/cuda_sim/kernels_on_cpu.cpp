// Runs the f32 instances of crates/clip-model/src/ops/cuda/kernels/*.cu on the CPU (through
// cuda_sim.h) against plain double-precision loops, for the shapes and
// options the encoder uses and the edges around them. Prints one "ok" line
// per case; exits non-zero with the case and the error otherwise. Built and
// run by tests/it/cuda_kernels_on_cpu.rs.
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

#include "../../src/ops/cuda/kernels/channels_last.cu"
#include "../../src/ops/cuda/kernels/linear_epilogue.cu"
#include "../../src/ops/cuda/kernels/packed_attention.cu"

static std::mt19937 rng(20261127);

static std::vector<float> random_values(size_t n, float scale) {
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = normal(rng);
  return v;
}

static int failures = 0;

static void report(const std::string& name, double max_error, double bound) {
  if (max_error <= bound) {
    std::printf("ok %s (max error %.3g)\n", name.c_str(), max_error);
  } else {
    std::printf("FAILED %s: max error %.3g above %.3g\n", name.c_str(), max_error, bound);
    ++failures;
  }
}

static void check_linear_epilogue(unsigned int rows, unsigned int n, int activation,
                                  bool with_residual, unsigned int threads) {
  auto y = random_values(size_t(rows) * n, 2.0f);
  auto bias = random_values(n, 1.0f);
  auto residual = random_values(size_t(rows) * n, 1.0f);
  std::vector<float> out(size_t(rows) * n, NAN);
  const float* r = with_residual ? residual.data() : nullptr;
  launch({rows, 1, 1}, {threads, 1, 1}, [&] {
    linear_epilogue_f32(y.data(), bias.data(), r, out.data(), n, activation);
  });
  double max_error = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    double v = double(y[i]) + bias[i % n];
    if (with_residual) v += residual[i];
    if (activation == 1) v = v / (1.0 + std::exp(-1.702 * v));
    if (activation == 2) v = std::max(v, 0.0);
    max_error = std::max(max_error, std::abs(v - out[i]) / std::max(1.0, std::abs(v)));
  }
  const char* names[] = {"", " quick_gelu", " relu"};
  report("linear_epilogue rows=" + std::to_string(rows) + " n=" + std::to_string(n) +
             names[activation] + (with_residual ? " residual" : ""),
         max_error, 1e-6);
}

enum class Mask { None, Causal, Ragged };

template <int HD>
static void check_packed_attention(int batch, int tokens, int heads, Mask mask_kind,
                                   unsigned int threads) {
  const size_t width = size_t(heads) * HD;
  auto qkv = random_values(size_t(batch) * tokens * 3 * width, 1.0f);
  // q pre-scaled by HD^-1/2, as the encoder packs it
  for (size_t row = 0; row < size_t(batch) * tokens; ++row)
    for (size_t c = 0; c < width; ++c) qkv[row * 3 * width + c] /= std::sqrt(float(HD));
  std::vector<float> mask;
  if (mask_kind != Mask::None) {
    mask.assign(size_t(tokens) * tokens, 0.0f);
    auto noise = random_values(mask.size(), 1.0f);
    for (int i = 0; i < tokens; ++i)
      for (int j = 0; j < tokens; ++j) {
        float& m = mask[size_t(i) * tokens + j];
        if (mask_kind == Mask::Causal) {
          m = j > i ? -INFINITY : 0.0f;
        } else {
          // finite values, some keys masked, and the last query row masked whole
          m = (i == tokens - 1 || (i + 2 * j) % 5 == 0) ? -INFINITY : noise[i * tokens + j];
        }
      }
  }
  std::vector<float> out(size_t(batch) * tokens * width, NAN);
  const float* m = mask.empty() ? nullptr : mask.data();
  const unsigned int query_blocks = (tokens + threads - 1) / threads;
  launch({query_blocks, unsigned(heads), unsigned(batch)}, {threads, 1, 1}, [&] {
    if constexpr (HD == 4) packed_attention_f32_4(qkv.data(), m, out.data(), tokens, heads);
    if constexpr (HD == 8) packed_attention_f32_8(qkv.data(), m, out.data(), tokens, heads);
    if constexpr (HD == 16) packed_attention_f32_16(qkv.data(), m, out.data(), tokens, heads);
    if constexpr (HD == 32) packed_attention_f32_32(qkv.data(), m, out.data(), tokens, heads);
    if constexpr (HD == 64) packed_attention_f32_64(qkv.data(), m, out.data(), tokens, heads);
  });

  // softmax(q kᵀ + mask) v per image and head, in double, keys at -inf left out.
  double max_error = 0;
  auto at = [&](int b, int t, int part, int h, int d) {
    return double(qkv[((size_t(b) * tokens + t) * 3 + part) * width + size_t(h) * HD + d]);
  };
  for (int b = 0; b < batch; ++b)
    for (int h = 0; h < heads; ++h)
      for (int i = 0; i < tokens; ++i) {
        std::vector<double> scores(tokens, -INFINITY);
        double top = -INFINITY;
        for (int j = 0; j < tokens; ++j) {
          double extra = m ? double(mask[size_t(i) * tokens + j]) : 0.0;
          if (extra == -INFINITY) continue;
          double s = extra;
          for (int d = 0; d < HD; ++d) s += at(b, i, 0, h, d) * at(b, j, 1, h, d);
          scores[j] = s;
          top = std::max(top, s);
        }
        double sum = 0;
        for (int j = 0; j < tokens; ++j)
          if (scores[j] != -INFINITY) sum += std::exp(scores[j] - top);
        for (int d = 0; d < HD; ++d) {
          double v = 0;
          for (int j = 0; j < tokens; ++j)
            if (scores[j] != -INFINITY) v += std::exp(scores[j] - top) / sum * at(b, j, 2, h, d);
          double got = out[(size_t(b) * tokens + i) * width + size_t(h) * HD + d];
          max_error = std::max(max_error, std::abs(v - got));
        }
      }
  const char* mask_name = mask_kind == Mask::None ? "none" : mask_kind == Mask::Causal ? "causal" : "ragged";
  report("packed_attention head_dim=" + std::to_string(HD) + " batch=" + std::to_string(batch) +
             " tokens=" + std::to_string(tokens) + " heads=" + std::to_string(heads) +
             " mask=" + mask_name + " threads=" + std::to_string(threads),
         max_error, 1e-5);
}

template <int HD>
static void check_head_dim() {
  // 1 token; under one key tile; the ViT-B/32 sequence (50); over two tiles
  // and over one block of queries (77, the text context).
  for (int tokens : {1, 7, 50, 77})
    for (Mask mask : {Mask::None, Mask::Causal, Mask::Ragged})
      check_packed_attention<HD>(2, tokens, 3, mask, 64);
}

// x: (batch, height, width, channels)
static double input_at(const std::vector<float>& x, int height, int width, int channels, int b,
                       int y, int xx, int c) {
  if (y < 0 || y >= height || xx < 0 || xx >= width) return 0.0;
  return x[((size_t(b) * height + y) * width + xx) * channels + c];
}

static void check_im2col(int batch, int height, int width, int channels, int kernel,
                         int stride, int padding) {
  const int oh = (height + 2 * padding - kernel) / stride + 1;
  const int ow = (width + 2 * padding - kernel) / stride + 1;
  const int columns = kernel * kernel * channels;
  auto x = random_values(size_t(batch) * height * width * channels, 1.0f);
  std::vector<float> col(size_t(batch) * oh * ow * columns, NAN);
  const unsigned int threads = std::min(256u, (unsigned(columns) + 31) / 32 * 32);
  launch({unsigned(batch * oh * ow), 1, 1}, {threads, 1, 1}, [&] {
    im2col_nhwc_f32(x.data(), col.data(), height, width, channels, kernel, stride, padding, oh, ow);
  });
  double max_error = 0;
  for (int b = 0; b < batch; ++b)
    for (int oy = 0; oy < oh; ++oy)
      for (int ox = 0; ox < ow; ++ox)
        for (int ky = 0; ky < kernel; ++ky)
          for (int kx = 0; kx < kernel; ++kx)
            for (int c = 0; c < channels; ++c) {
              double want = input_at(x, height, width, channels, b, oy * stride - padding + ky,
                                     ox * stride - padding + kx, c);
              double got = col[((size_t(b) * oh + oy) * ow + ox) * columns +
                               (ky * kernel + kx) * channels + c];
              max_error = std::max(max_error, std::abs(want - got));
            }
  report("im2col_nhwc " + std::to_string(batch) + "x" + std::to_string(height) + "x" +
             std::to_string(width) + "x" + std::to_string(channels) + " kernel=" +
             std::to_string(kernel) + " stride=" + std::to_string(stride) +
             " padding=" + std::to_string(padding),
         max_error, 0.0);
}

static void check_avg_pool(int batch, int height, int width, int channels, int size) {
  const int oh = height / size, ow = width / size;
  auto x = random_values(size_t(batch) * height * width * channels, 1.0f);
  std::vector<float> out(size_t(batch) * oh * ow * channels, NAN);
  const unsigned int threads = std::min(256u, (unsigned(channels) + 31) / 32 * 32);
  launch({unsigned(batch * oh * ow), 1, 1}, {threads, 1, 1}, [&] {
    avg_pool_nhwc_f32(x.data(), out.data(), height, width, channels, size, oh, ow);
  });
  double max_error = 0;
  for (int b = 0; b < batch; ++b)
    for (int oy = 0; oy < oh; ++oy)
      for (int ox = 0; ox < ow; ++ox)
        for (int c = 0; c < channels; ++c) {
          double sum = 0;
          for (int dy = 0; dy < size; ++dy)
            for (int dx = 0; dx < size; ++dx)
              sum += input_at(x, height, width, channels, b, oy * size + dy, ox * size + dx, c);
          double got = out[((size_t(b) * oh + oy) * ow + ox) * channels + c];
          max_error = std::max(max_error, std::abs(sum / (size * size) - got));
        }
  report("avg_pool_nhwc " + std::to_string(batch) + "x" + std::to_string(height) + "x" +
             std::to_string(width) + "x" + std::to_string(channels) + " size=" +
             std::to_string(size),
         max_error, 1e-6);
}

int main() {
  check_linear_epilogue(3, 5, 0, false, 128);
  check_linear_epilogue(4, 300, 0, false, 128);
  check_linear_epilogue(4, 300, 1, false, 128);
  check_linear_epilogue(4, 300, 0, true, 128);
  check_linear_epilogue(4, 300, 2, false, 128);
  check_linear_epilogue(2, 1000, 2, true, 256);
  // the stem's first convolution (3 channels, stride 2), a block's 3x3, odd
  // sizes where the last window is cut, a 1x1 with padding 0
  check_im2col(2, 9, 9, 3, 3, 2, 1);
  check_im2col(2, 7, 5, 40, 3, 1, 1);
  check_im2col(1, 6, 6, 300, 3, 1, 1);
  check_im2col(3, 4, 4, 8, 1, 1, 0);
  check_avg_pool(2, 8, 8, 40, 2);
  check_avg_pool(2, 7, 9, 300, 2);
  check_avg_pool(1, 9, 9, 3, 3);
  check_head_dim<4>();
  check_head_dim<8>();
  check_head_dim<16>();
  check_head_dim<32>();
  check_head_dim<64>();
  // fewer threads than tokens in a block: several query blocks
  check_packed_attention<8>(1, 77, 2, Mask::Causal, 32);
  if (failures) {
    std::printf("%d case(s) failed\n", failures);
    return 1;
  }
  return 0;
}
