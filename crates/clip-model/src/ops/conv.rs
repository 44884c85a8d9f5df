//! A ResNet's convolutions (BatchNorm folded in) and average pools, in the
//! feature-map layout that runs fastest on the tensors' device.
//!
//! Channels-last (NHWC) is the layout in which a convolution is one matrix
//! product (pixels are rows, channels columns): a 1x1 convolution with
//! stride 1 multiplies the map as it is, a larger one multiplies its patch
//! matrix (im2col), and the folded BatchNorm's bias, the block's residual
//! and the ReLU follow in one fused pass. candle's own convolution (without
//! cuDNN) is im2col into NHWC order, the product, a strided copy back to
//! NCHW, then a broadcast bias addition and a ReLU: two of those five
//! passes move data only to undo the layout. So where this crate's CUDA
//! kernels or fused CPU products run, a tower keeps its maps channels-last
//! from the stem to the attention pool, whose tokens then are the map's
//! rows as they lie; elsewhere (half precision on the CPU) it uses candle's
//! NCHW convolutions. [`MapLayout`] makes that choice, once per tower.
//!
//! On the CPU the patch matrix, pooling and tiled products are
//! [`super::cpu::conv`]; on CUDA, `cuda/kernels/channels_last.cu` and the
//! epilogue kernel after cuBLAS's product.

use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Module, Result, Shape, Tensor};
use candle_nn::{Conv2d, Conv2dConfig};

use super::cpu::conv::{ConvWeights, avg_pool as cpu_avg_pool, conv_tiled, patch_matrix};
use super::cpu::linear::product;
use super::cpu::{self, slice_f32, storage_f32};
use super::cuda;
use super::epilogue::EpilogueActivation;
use super::shapes::{MapShape, PatchGeometry};
use crate::profile;

/// Bytes of patch matrix a CPU task builds and multiplies at a time:
/// chosen by measuring RN50 with 256 KiB to 32 MiB tiles
/// (`benches/results/cpu_2core_2026-11-28.md`). Smaller tiles repack the
/// weights for few rows; larger ones leave the cache.
const PATCH_TILE_BYTES: usize = 4 << 20;

/// Fewer tiles than this per thread and a convolution builds its whole
/// patch matrix instead, so that the product can still use every core.
const TILES_PER_THREAD: usize = 2;

/// The layout a tower keeps its feature maps in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapLayout {
    /// (batch, channels, h, w): candle's convolutions.
    Nchw,
    /// (batch, h, w, channels): convolutions as fused products.
    ChannelsLast,
}

impl MapLayout {
    /// Channels-last where this crate's CUDA kernels or fused CPU products
    /// run `device` and `dtype`, else NCHW.
    pub fn for_device(device: &Device, dtype: DType) -> MapLayout {
        let fused = cuda::runs_on_device(device, dtype) || (device.is_cpu() && dtype == DType::F32);
        match fused {
            true => MapLayout::ChannelsLast,
            false => MapLayout::Nchw,
        }
    }

    /// `pixels` (batch, 3, h, w) in this layout.
    pub fn from_nchw(self, pixels: &Tensor) -> Result<Tensor> {
        match self {
            MapLayout::Nchw => Ok(pixels.clone()),
            MapLayout::ChannelsLast => pixels.permute((0, 2, 3, 1))?.contiguous(),
        }
    }

    /// The mean of each `size` x `size` window (stride `size`): torch's
    /// `AvgPool2d(size)`.
    pub fn avg_pool(self, x: &Tensor, size: usize) -> Result<Tensor> {
        match self {
            MapLayout::Nchw => x.avg_pool2d(size),
            MapLayout::ChannelsLast => avg_pool(x, size),
        }
    }

    /// (batch, positions, channels): one token per position of the map.
    pub fn tokens(self, x: &Tensor) -> Result<Tensor> {
        match self {
            MapLayout::Nchw => {
                let (b, c, h, w) = x.dims4()?;
                x.reshape((b, c, h * w))?.transpose(1, 2)
            }
            MapLayout::ChannelsLast => {
                let (b, h, w, c) = x.dims4()?;
                x.reshape((b, h * w, c))
            }
        }
    }
}

/// A convolution with its BatchNorm folded in (so it has a bias), for maps
/// of one layout.
#[derive(Debug, Clone)]
pub enum Conv {
    Nchw(Conv2d),
    ChannelsLast(ChannelsLastConv),
}

impl Conv {
    /// From an NCHW kernel (c_out, c_in, k, k) and its bias (c_out).
    pub fn new(
        weight: &Tensor,
        bias: Tensor,
        geometry: PatchGeometry,
        layout: MapLayout,
    ) -> Result<Conv> {
        Ok(match layout {
            MapLayout::ChannelsLast => {
                Conv::ChannelsLast(ChannelsLastConv::new(weight, bias, geometry)?)
            }
            MapLayout::Nchw => Conv::Nchw(Conv2d::new(
                weight.clone(),
                Some(bias),
                Conv2dConfig {
                    padding: geometry.padding,
                    stride: geometry.stride,
                    ..Default::default()
                },
            )),
        })
    }

    /// `conv(x) + bias + residual`, then ReLU when `relu`.
    pub fn forward(&self, x: &Tensor, residual: Option<&Tensor>, relu: bool) -> Result<Tensor> {
        match self {
            Conv::Nchw(conv) => {
                let mut y = conv.forward(x)?;
                if let Some(residual) = residual {
                    y = (y + residual)?;
                }
                if relu { y.relu() } else { Ok(y) }
            }
            Conv::ChannelsLast(conv) => conv.forward(x, residual, relu),
        }
    }
}

/// A folded convolution on channels-last maps: one product per call.
#[derive(Debug, Clone)]
pub struct ChannelsLastConv {
    /// (c_out, k·k·c_in): the (c_out, k, k, c_in) kernel, flattened.
    weight: Tensor,
    bias: Tensor,
    geometry: PatchGeometry,
}

impl ChannelsLastConv {
    /// From an NCHW kernel (c_out, c_in, k, k) and its bias (c_out).
    pub fn new(weight: &Tensor, bias: Tensor, geometry: PatchGeometry) -> Result<Self> {
        let (c_out, c_in, kernel, kernel_w) = weight.dims4()?;
        if kernel != kernel_w || kernel != geometry.kernel {
            candle_core::bail!(
                "channels-last convolution: a {kernel}x{kernel_w} kernel for {0}x{0} patches",
                geometry.kernel
            )
        }
        let weight = weight
            .permute((0, 2, 3, 1))?
            .contiguous()?
            .reshape((c_out, kernel * kernel * c_in))?;
        Ok(Self {
            weight,
            bias,
            geometry,
        })
    }

    /// `activation(conv(x) + bias + residual)`, ReLU when `relu`.
    /// `x`: (batch, h, w, c_in) -> (batch, oh, ow, c_out).
    pub fn forward(&self, x: &Tensor, residual: Option<&Tensor>, relu: bool) -> Result<Tensor> {
        let s = self.geometry.map_shape(x.dims())?;
        let rows = s.batch * s.out_height * s.out_width;
        let c_out = self.weight.dim(0)?;
        let residual = residual.map(|r| r.reshape((rows, c_out))).transpose()?;
        let activation = match relu {
            true => EpilogueActivation::Relu,
            false => EpilogueActivation::Identity,
        };
        // On the CPU, a tile of output pixels at a time when the map has
        // enough tiles to keep every core busy.
        let tile_rows = (PATCH_TILE_BYTES / (self.weight.dim(1)?.max(1) * size_of::<f32>())).max(8);
        let threads = candle_core::utils::get_num_threads().max(1);
        let out_dims = (s.batch, s.out_height, s.out_width, c_out);
        if !self.geometry.is_pointwise()
            && cpu::runs(x)
            && rows.div_ceil(tile_rows) >= TILES_PER_THREAD * threads
        {
            let out = profile::time("resnet: convolution, tiled patches", x.device(), || {
                self.forward_tiled(x, s, residual.as_ref(), activation, tile_rows)
            })?;
            return out.reshape(out_dims);
        }
        let patches = if self.geometry.is_pointwise() {
            x.contiguous()?.reshape((rows, s.channels))?
        } else {
            profile::time("resnet: patch matrix (im2col)", x.device(), || {
                x.contiguous()?.apply_op1_no_bwd(&Im2Col(self.geometry))
            })?
        };
        let out = profile::time("resnet: convolution products", x.device(), || {
            if cpu::runs(&patches) {
                let (bias, residual) = (Some(&self.bias), residual.as_ref());
                product(&patches, &self.weight, bias, residual, activation)
            } else {
                let product = patches.matmul(&self.weight.t()?)?;
                cuda::epilogue(&product, &self.bias, residual.as_ref(), activation)
            }
        })?;
        out.reshape(out_dims)
    }

    /// The CPU f32 convolution `tile_rows` output pixels at a time
    /// ([`conv_tiled`]); `residual` (rows, c_out). Returns (rows, c_out).
    fn forward_tiled(
        &self,
        x: &Tensor,
        s: MapShape,
        residual: Option<&Tensor>,
        activation: EpilogueActivation,
        tile_rows: usize,
    ) -> Result<Tensor> {
        let c_out = self.weight.dim(0)?;
        let x = x.contiguous()?;
        let residual = residual.map(Tensor::contiguous).transpose()?;
        let (x_storage, x_layout) = x.storage_and_layout();
        let (w_storage, w_layout) = self.weight.storage_and_layout();
        let (b_storage, b_layout) = self.bias.storage_and_layout();
        let residual_guard = residual.as_ref().map(|r| r.storage_and_layout());
        let weights = ConvWeights {
            weight: storage_f32(&w_storage, w_layout, "convolution weight")?,
            c_out,
            bias: storage_f32(&b_storage, b_layout, "convolution bias")?,
            residual: match &residual_guard {
                Some((s, l)) => Some(storage_f32(s, l, "residual")?),
                None => None,
            },
            activation,
        };
        let xs = storage_f32(&x_storage, x_layout, "convolution input")?;
        let out = conv_tiled(self.geometry, xs, &s, weights, tile_rows)?;
        let rows = s.batch * s.out_height * s.out_width;
        drop((x_storage, w_storage, b_storage, residual_guard));
        Tensor::from_vec(out, (rows, c_out), x.device())
    }
}

/// The mean of each `size` x `size` window (stride `size`) of a
/// (batch, h, w, c) map: torch's `AvgPool2d(size)` in channels-last order.
pub fn avg_pool(x: &Tensor, size: usize) -> Result<Tensor> {
    profile::time("resnet: average pools", x.device(), || {
        x.contiguous()?.apply_op1_no_bwd(&AvgPool { size })
    })
}

/// The (batch·oh·ow, k·k·c) patch matrix of a (batch, h, w, c) map.
struct Im2Col(PatchGeometry);

impl CustomOp1 for Im2Col {
    fn name(&self) -> &'static str {
        "im2col-nhwc"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let s = self.0.map_shape(layout.dims())?;
        let x = slice_f32(storage, layout, "im2col input")?;
        let out = patch_matrix(self.0, x, &s);
        Ok((CpuStorage::F32(out), self.0.patch_matrix(&s)))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        storage: &candle_core::CudaStorage,
        layout: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let s = self.0.map_shape(layout.dims())?;
        let g = self.0;
        let out = cuda::launch::im2col_nhwc(s, (g.kernel, g.stride, g.padding), (storage, layout))?;
        Ok((out, self.0.patch_matrix(&s)))
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
            candle_core::bail!(
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
        let x = slice_f32(storage, layout, "avg-pool input")?;
        Ok((
            CpuStorage::F32(cpu_avg_pool(x, &s, self.size)),
            Self::output(&s),
        ))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        storage: &candle_core::CudaStorage,
        layout: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let s = self.shape(layout)?;
        let out = cuda::launch::avg_pool_nhwc(s, self.size, (storage, layout))?;
        Ok((out, Self::output(&s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::max_abs_diff;

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
            let geometry = PatchGeometry {
                kernel: k,
                stride,
                padding,
            };
            let reference = Conv::new(&weight, bias.clone(), geometry, MapLayout::Nchw)
                .unwrap()
                .forward(&x, None, false)
                .unwrap();
            let residual = Tensor::randn(0f32, 1.0, reference.dims(), &dev).unwrap();
            let conv = ChannelsLastConv::new(&weight, bias, geometry).unwrap();

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
                let shape = geometry.map_shape(nhwc(&x).dims()).unwrap();
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

    #[test]
    fn the_layout_follows_the_device_and_dtype() {
        assert_eq!(
            MapLayout::for_device(&Device::Cpu, DType::F32),
            MapLayout::ChannelsLast
        );
        assert_eq!(
            MapLayout::for_device(&Device::Cpu, DType::F16),
            MapLayout::Nchw
        );
        let x = Tensor::randn(0f32, 1.0, (2, 3, 4, 5), &Device::Cpu).unwrap();
        let tokens_nchw = MapLayout::Nchw.tokens(&x).unwrap();
        let tokens_last = MapLayout::ChannelsLast
            .tokens(&MapLayout::ChannelsLast.from_nchw(&x).unwrap())
            .unwrap();
        assert_eq!(tokens_nchw.dims(), &[2, 20, 3]);
        assert_eq!(max_abs_diff(&tokens_nchw, &tokens_last), 0.0);
    }
}
