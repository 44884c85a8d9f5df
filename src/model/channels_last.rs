//! A ResNet's convolutions on channels-last (NHWC) feature maps, the layout
//! in which a convolution is one matrix product (pixels are rows, channels
//! columns): a 1x1 convolution with stride 1 multiplies the map as it is, a
//! larger one multiplies its patch matrix (im2col), and the folded
//! BatchNorm's bias, the block's residual and the ReLU follow in one fused
//! pass (`cuda_fused::epilogue`).
//!
//! candle's CUDA convolution (without cuDNN) is im2col into NHWC order, the
//! product, a strided copy back to NCHW, then a broadcast bias addition with
//! its per-element index arithmetic and a ReLU: two of those five passes
//! move data only to undo the layout, and in RN50 at batch 256 on an H100
//! they left us at 0.12x of PyTorch with cuDNN. The model keeps its maps
//! channels-last from the stem to the attention pool, whose tokens then are
//! the map's rows as they lie.
//!
//! The CPU runs the same plan in f32: the patch matrix and pooling below in
//! parallel over pixels, and the product with bias, residual and ReLU as
//! one `gemm` call (`cpu_linear::product`), where candle's NCHW convolution
//! adds a copy back to NCHW and single-threaded bias, residual and ReLU
//! passes. The CUDA kernels are `src/model/kernels/channels_last.cu`.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor, bail};
use rayon::prelude::*;

use super::cpu_linear::{self, Epilogue};
use super::cuda_fused;
use super::epilogue::EpilogueActivation;
use super::op_timer;

/// Bytes of patch matrix a CPU task builds and multiplies at a time.
/// Measured on the 2-core Zen 4 development machine (32 MB L3), RN50 at
/// batch 32: 4 MiB 2.75 s a pass, 1 MiB 3.1 s (each tile's product repacks
/// the weights and runs few rows), the whole matrix at once 3.6 s.
const PATCH_TILE_BYTES: usize = 4 << 20;

/// Fewer tiles than this per thread and a convolution builds its whole
/// patch matrix instead, so that the product can still use every core.
const TILES_PER_THREAD: usize = 2;

/// A convolution with its BatchNorm folded in, for channels-last maps.
#[derive(Debug, Clone)]
pub struct ChannelsLastConv {
    /// (c_out, k·k·c_in): the (c_out, k, k, c_in) kernel, flattened.
    weight: Tensor,
    bias: Tensor,
    kernel: usize,
    stride: usize,
    padding: usize,
}

impl ChannelsLastConv {
    /// From an NCHW kernel (c_out, c_in, k, k) and its bias (c_out).
    pub fn new(weight: &Tensor, bias: Tensor, stride: usize, padding: usize) -> Result<Self> {
        let (c_out, c_in, kernel, kernel_w) = weight.dims4()?;
        if kernel != kernel_w {
            bail!("channels-last convolution: square kernels only, not {kernel}x{kernel_w}")
        }
        let weight = weight
            .permute((0, 2, 3, 1))?
            .contiguous()?
            .reshape((c_out, kernel * kernel * c_in))?;
        Ok(Self {
            weight,
            bias,
            kernel,
            stride,
            padding,
        })
    }

    /// `activation(conv(x) + bias + residual)`, ReLU when `relu`.
    /// `x`: (batch, h, w, c_in) -> (batch, oh, ow, c_out).
    pub fn forward(&self, x: &Tensor, residual: Option<&Tensor>, relu: bool) -> Result<Tensor> {
        let (batch, height, width, channels) = x.dims4()?;
        let (k, s, p) = (self.kernel, self.stride, self.padding);
        let (Some(out_height), Some(out_width)) =
            (out_size(height, k, s, p), out_size(width, k, s, p))
        else {
            bail!("a {height}x{width} map is smaller than its {k}x{k} kernel")
        };
        let rows = batch * out_height * out_width;
        let c_out = self.weight.dim(0)?;
        let residual = residual.map(|r| r.reshape((rows, c_out))).transpose()?;
        let activation = match relu {
            true => EpilogueActivation::Relu,
            false => EpilogueActivation::Identity,
        };
        let pointwise = self.kernel == 1 && self.stride == 1 && self.padding == 0;
        // On the CPU, a tile of output pixels at a time when the map has
        // enough tiles to keep every core busy.
        let tile_rows = (PATCH_TILE_BYTES / (self.weight.dim(1)?.max(1) * size_of::<f32>())).max(8);
        let threads = candle_core::utils::get_num_threads().max(1);
        if !pointwise
            && cpu_linear::runs_fused(x)
            && rows.div_ceil(tile_rows) >= TILES_PER_THREAD * threads
        {
            let shape = self.im2col().shape(x.layout())?;
            let out = op_timer::time("resnet: convolution, tiled patches", x.device(), || {
                self.forward_tiled(x, shape, residual.as_ref(), activation, tile_rows)
            })?;
            return out.reshape((batch, out_height, out_width, c_out));
        }
        let patches = if pointwise {
            x.contiguous()?.reshape((rows, channels))?
        } else {
            op_timer::time("resnet: patch matrix (im2col)", x.device(), || {
                x.contiguous()?.apply_op1_no_bwd(&self.im2col())
            })?
        };
        let out = op_timer::time("resnet: convolution products", x.device(), || {
            if cpu_linear::runs_fused(&patches) {
                let (bias, residual) = (Some(&self.bias), residual.as_ref());
                cpu_linear::product(&patches, &self.weight, bias, residual, activation)
            } else {
                let product = patches.matmul(&self.weight.t()?)?;
                cuda_fused::epilogue(&product, &self.bias, residual.as_ref(), activation)
            }
        })?;
        out.reshape((batch, out_height, out_width, c_out))
    }

    fn im2col(&self) -> Im2Col {
        Im2Col {
            kernel: self.kernel,
            stride: self.stride,
            padding: self.padding,
        }
    }

    /// The CPU f32 convolution `tile_rows` output pixels at a time: each
    /// task builds its tile's rows of the patch matrix and multiplies them
    /// while they are still in cache, where the whole matrix (460 MB in
    /// RN50's stem at batch 32) would go out to memory and back.
    fn forward_tiled(
        &self,
        x: &Tensor,
        shape: MapShape,
        residual: Option<&Tensor>,
        activation: EpilogueActivation,
        tile_rows: usize,
    ) -> Result<Tensor> {
        let im2col = self.im2col();
        let (c_out, columns) = self.weight.dims2()?;
        let rows = shape.batch * shape.out_height * shape.out_width;
        if tile_rows == 0 || c_out == 0 {
            bail!("convolution: {tile_rows}-row tiles of {c_out} outputs")
        }
        if columns != self.kernel * self.kernel * shape.channels {
            bail!(
                "convolution: a {0}x{0} kernel over {1} channels has {columns} weights per output",
                self.kernel,
                shape.channels
            )
        }
        let x = x.contiguous()?;
        let residual = residual.map(Tensor::contiguous).transpose()?;
        let (x_storage, x_layout) = x.storage_and_layout();
        let (w_storage, w_layout) = self.weight.storage_and_layout();
        let (b_storage, b_layout) = self.bias.storage_and_layout();
        let xs = cpu_linear::f32_values(&x_storage, x_layout, "convolution input")?;
        let ws = cpu_linear::f32_values(&w_storage, w_layout, "convolution weight")?;
        let bias = cpu_linear::f32_values(&b_storage, b_layout, "convolution bias")?;
        let residual_guard = residual.as_ref().map(|r| r.storage_and_layout());
        let residual = match &residual_guard {
            Some((s, l)) => Some(cpu_linear::f32_values(s, l, "residual")?),
            None => None,
        };
        if residual.is_some_and(|r| r.len() != rows * c_out) {
            bail!("convolution: a residual of the wrong size for {rows}x{c_out} outputs")
        }

        let mut out = vec![0f32; rows * c_out];
        out.par_chunks_mut(tile_rows * c_out)
            .enumerate()
            .try_for_each_init(Vec::new, |patches, (tile, out_tile)| {
                let (first, tile_len) = (tile * tile_rows, out_tile.len() / c_out);
                patches.resize(tile_len * columns, 0.0);
                for (i, row) in patches.chunks_mut(columns).enumerate() {
                    im2col.fill_row(xs, &shape, first + i, row);
                }
                let epilogue = Epilogue {
                    bias: Some(bias),
                    residual: residual.map(|r| &r[first * c_out..(first + tile_len) * c_out]),
                    activation,
                };
                let dims = (tile_len, c_out, columns);
                cpu_linear::product_into(out_tile, dims, patches, ws, epilogue, 1)
            })?;
        drop((x_storage, w_storage, b_storage, residual_guard));
        Tensor::from_vec(out, (rows, c_out), x.device())
    }
}

/// Output length of a convolution along one axis, if the kernel fits.
fn out_size(input: usize, kernel: usize, stride: usize, padding: usize) -> Option<usize> {
    (input + 2 * padding)
        .checked_sub(kernel)
        .map(|span| span / stride.max(1) + 1)
}

/// The mean of each `size` x `size` window (stride `size`) of a
/// (batch, h, w, c) map: torch's `AvgPool2d(size)` in channels-last order.
pub fn avg_pool(x: &Tensor, size: usize) -> Result<Tensor> {
    op_timer::time("resnet: average pools", x.device(), || {
        x.contiguous()?.apply_op1_no_bwd(&AvgPool { size })
    })
}

/// The (batch·oh·ow, k·k·c) patch matrix of a (batch, h, w, c) map.
struct Im2Col {
    kernel: usize,
    stride: usize,
    padding: usize,
}

/// The sizes of one channels-last op: input (batch, h, w, c), output (oh, ow).
#[derive(Debug, Clone, Copy)]
pub(crate) struct MapShape {
    pub batch: usize,
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub out_height: usize,
    pub out_width: usize,
}

impl Im2Col {
    fn shape(&self, layout: &Layout) -> Result<MapShape> {
        let (batch, height, width, channels) = layout.shape().dims4()?;
        match (
            out_size(height, self.kernel, self.stride, self.padding),
            out_size(width, self.kernel, self.stride, self.padding),
        ) {
            (Some(out_height), Some(out_width)) if self.stride > 0 => Ok(MapShape {
                batch,
                height,
                width,
                channels,
                out_height,
                out_width,
            }),
            _ => bail!(
                "im2col: a {height}x{width} map and a {0}x{0} kernel",
                self.kernel
            ),
        }
    }

    fn output(&self, s: &MapShape) -> Shape {
        Shape::from((
            s.batch * s.out_height * s.out_width,
            self.kernel * self.kernel * s.channels,
        ))
    }

    /// Row `pixel` of the patch matrix of `x` (a map of shape `s`): its
    /// k·k taps of c channels, zero where a tap falls outside the map.
    fn fill_row(&self, x: &[f32], s: &MapShape, pixel: usize, row: &mut [f32]) {
        let (k, c) = (self.kernel, s.channels);
        let image = pixel / (s.out_height * s.out_width);
        let (oy, ox) = (pixel / s.out_width % s.out_height, pixel % s.out_width);
        for ky in 0..k {
            let iy = (oy * self.stride + ky).checked_sub(self.padding);
            for kx in 0..k {
                let ix = (ox * self.stride + kx).checked_sub(self.padding);
                let tap = &mut row[(ky * k + kx) * c..][..c];
                match (iy, ix) {
                    (Some(iy), Some(ix)) if iy < s.height && ix < s.width => {
                        let at = ((image * s.height + iy) * s.width + ix) * c;
                        tap.copy_from_slice(&x[at..at + c]);
                    }
                    _ => tap.fill(0.0),
                }
            }
        }
    }
}

impl CustomOp1 for Im2Col {
    fn name(&self) -> &'static str {
        "im2col-nhwc"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let s = self.shape(layout)?;
        let x = cpu_linear::cpu_f32_values(storage, layout, "im2col input")?;
        let columns = self.kernel * self.kernel * s.channels;
        let mut out = vec![0f32; self.output(&s).elem_count()];
        // One output pixel (a row of k·k·c values) per task.
        out.par_chunks_mut(columns.max(1))
            .enumerate()
            .for_each(|(pixel, row)| self.fill_row(x, &s, pixel, row));
        Ok((CpuStorage::F32(out), self.output(&s)))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        storage: &candle_core::CudaStorage,
        layout: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let s = self.shape(layout)?;
        let out = super::cuda_launch::im2col_nhwc(
            s,
            (self.kernel, self.stride, self.padding),
            (storage, layout),
        )?;
        Ok((out, self.output(&s)))
    }
}

/// Average pooling of a (batch, h, w, c) map by `size` x `size` windows.
struct AvgPool {
    size: usize,
}

impl AvgPool {
    fn shape(&self, layout: &Layout) -> Result<MapShape> {
        let (batch, height, width, channels) = layout.shape().dims4()?;
        if self.size == 0 || height < self.size || width < self.size {
            bail!(
                "avg-pool: a {height}x{width} map and {0}x{0} windows",
                self.size
            )
        }
        Ok(MapShape {
            batch,
            height,
            width,
            channels,
            out_height: height / self.size,
            out_width: width / self.size,
        })
    }

    fn output(s: &MapShape) -> Shape {
        Shape::from((s.batch, s.out_height, s.out_width, s.channels))
    }
}

impl CustomOp1 for AvgPool {
    fn name(&self) -> &'static str {
        "avg-pool-nhwc"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let s = self.shape(layout)?;
        let x = cpu_linear::cpu_f32_values(storage, layout, "avg-pool input")?;
        let n = self.size;
        let mut out = vec![0f32; Self::output(&s).elem_count()];
        // One pass on this thread: over both cores it measured slower.
        for (pixel, dst) in out.chunks_mut(s.channels.max(1)).enumerate() {
            let (image, oy, ox) = (
                pixel / (s.out_height * s.out_width),
                pixel / s.out_width % s.out_height,
                pixel % s.out_width,
            );
            for dy in 0..n {
                for dx in 0..n {
                    let at =
                        ((image * s.height + oy * n + dy) * s.width + ox * n + dx) * s.channels;
                    for (d, v) in dst.iter_mut().zip(&x[at..at + s.channels]) {
                        *d += v;
                    }
                }
            }
            dst.iter_mut().for_each(|d| *d /= (n * n) as f32);
        }
        Ok((CpuStorage::F32(out), Self::output(&s)))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        storage: &candle_core::CudaStorage,
        layout: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let s = self.shape(layout)?;
        let out = super::cuda_launch::avg_pool_nhwc(s, self.size, (storage, layout))?;
        Ok((out, Self::output(&s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_support::max_abs_diff;
    use candle_core::{DType, Device, Module};
    use candle_nn::{Conv2d, Conv2dConfig};

    fn nhwc(x: &Tensor) -> Tensor {
        x.permute((0, 2, 3, 1)).unwrap().contiguous().unwrap()
    }

    #[test]
    fn convolutions_equal_candles_nchw_ones() {
        let dev = Device::Cpu;
        // (c_in, c_out, kernel, stride, padding, h, w): the stem's first
        // convolution, a 3x3 in a block, a 1x1, an odd map.
        for (c_in, c_out, k, stride, padding, h, w) in [
            (3, 4, 3, 2, 1, 9, 9),
            (5, 6, 3, 1, 1, 7, 6),
            (8, 16, 1, 1, 0, 4, 4),
            (4, 4, 3, 2, 1, 8, 5),
        ] {
            let weight = Tensor::randn(0f32, 0.3, (c_out, c_in, k, k), &dev).unwrap();
            let bias = Tensor::randn(0f32, 1.0, c_out, &dev).unwrap();
            let x = Tensor::randn(0f32, 1.0, (2, c_in, h, w), &dev).unwrap();
            let config = Conv2dConfig {
                padding,
                stride,
                ..Default::default()
            };
            let reference = Conv2d::new(weight.clone(), Some(bias.clone()), config)
                .forward(&x)
                .unwrap();
            let residual = Tensor::randn(0f32, 1.0, reference.dims(), &dev).unwrap();
            let conv = ChannelsLastConv::new(&weight, bias, stride, padding).unwrap();

            let plain = conv.forward(&nhwc(&x), None, false).unwrap();
            assert!(max_abs_diff(&plain, &nhwc(&reference)) < 1e-4);
            let block_end = conv
                .forward(&nhwc(&x), Some(&nhwc(&residual)), true)
                .unwrap();
            let expected = (&reference + &residual).unwrap().relu().unwrap();
            assert!(max_abs_diff(&block_end, &nhwc(&expected)) < 1e-4);

            // The tiled CPU path (big maps only, in the model), with tiles
            // that end inside an image and a last tile that is short.
            if k > 1 {
                let shape = conv.im2col().shape(nhwc(&x).layout()).unwrap();
                let residual = nhwc(&residual);
                let (_, oh, ow, _) = residual.dims4().unwrap();
                let rows_residual = residual.reshape((2 * oh * ow, c_out)).unwrap();
                let relu = EpilogueActivation::Relu;
                let tiled = conv
                    .forward_tiled(&nhwc(&x), shape, Some(&rows_residual), relu, 7)
                    .unwrap()
                    .reshape((2, oh, ow, c_out))
                    .unwrap();
                assert!(max_abs_diff(&tiled, &nhwc(&expected)) < 1e-4);
            }
        }
    }

    #[test]
    fn average_pooling_equals_candles() {
        let dev = Device::Cpu;
        for (h, w, size) in [(8, 8, 2), (7, 9, 2), (9, 9, 3)] {
            let x = Tensor::randn(0f32, 1.0, (2, 5, h, w), &dev).unwrap();
            let reference = x.avg_pool2d(size).unwrap();
            let pooled = avg_pool(&nhwc(&x), size).unwrap();
            assert!(max_abs_diff(&pooled, &nhwc(&reference)) < 1e-6);
        }
        let tiny = Tensor::zeros((1, 1, 1, 3), DType::F32, &dev).unwrap();
        let err = avg_pool(&tiny, 2).unwrap_err().to_string();
        assert!(err.contains("a 1x1 map and 2x2 windows"), "{err}");
    }
}
