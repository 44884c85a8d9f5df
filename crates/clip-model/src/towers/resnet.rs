//! OpenAI's ModifiedResNet image tower (the RN50 ... RN50x64 CLIP models),
//! from the `visual.*` tensors of an OpenAI/open_clip state dict.
//!
//! Differences from torchvision's ResNet (Radford et al., 2021, section
//! 2.4): a stem of three 3x3 convolutions (the first with stride 2) and a
//! 2x2 average pool instead of one 7x7 convolution and a max pool; strided
//! blocks downsample with an average pool after the 3x3 convolution (and an
//! average pool before the 1x1 shortcut convolution) rather than with a
//! strided convolution; and the global average pool is replaced by
//! attention pooling: the mean of the feature map is prepended as a token,
//! a positional embedding added, and one multi-head attention step with that
//! token as the only query gives the embedding.
//!
//! BatchNorm (inference statistics) is folded into the preceding
//! bias-free convolution at load time, in f32, so a forward pass is
//! convolutions and ReLUs only.
//!
//! The feature maps' layout and the convolutions' implementation are
//! [`crate::ops::conv`]'s choice for the device and dtype (channels-last
//! fused products on CUDA and on the CPU in f32, candle's NCHW
//! convolutions otherwise); this file only says what the tower computes.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use crate::config::ResNetConfig;
use crate::ops::shapes::PatchGeometry;
use crate::ops::{Conv, MapLayout};
use crate::profile;

/// torch's BatchNorm2d default.
const BATCH_NORM_EPS: f64 = 1e-5;

/// A bias-free convolution followed by BatchNorm, as one convolution.
fn conv_bn(
    conv: VarBuilder,
    bn: VarBuilder,
    (inp, out, kernel): (usize, usize, usize),
    stride: usize,
    padding: usize,
    layout: MapLayout,
) -> Result<Conv> {
    let f32_get = |vb: &VarBuilder, shape: &[usize], name: &str| {
        vb.get_with_hints_dtype(shape, name, Default::default(), DType::F32)
    };
    let weight = f32_get(&conv, &[out, inp, kernel, kernel], "weight")?;
    let gamma = f32_get(&bn, &[out], "weight")?;
    let beta = f32_get(&bn, &[out], "bias")?;
    let mean = f32_get(&bn, &[out], "running_mean")?;
    let var = f32_get(&bn, &[out], "running_var")?;
    // y = (conv(x) - mean) * gamma / sqrt(var + eps) + beta
    let scale = (gamma / (var + BATCH_NORM_EPS)?.sqrt()?)?;
    let weight = weight.broadcast_mul(&scale.reshape((out, 1, 1, 1))?)?;
    let bias = (beta - (mean * &scale)?)?;
    let dtype = conv.dtype();
    let (weight, bias) = (weight.to_dtype(dtype)?, bias.to_dtype(dtype)?);
    let geometry = PatchGeometry {
        kernel,
        stride,
        padding,
    };
    Conv::new(&weight, bias, geometry, layout)
}

/// A bottleneck block (1x1, 3x3, avg-pool by the stride, 1x1 to 4x planes).
#[derive(Debug, Clone)]
struct Bottleneck {
    conv1: Conv,
    conv2: Conv,
    conv3: Conv,
    /// Average pool, then 1x1 conv + BN: when the stride or width changes.
    downsample: Option<Conv>,
    stride: usize,
    layout: MapLayout,
}

impl Bottleneck {
    fn new(
        vb: VarBuilder,
        (inplanes, planes, stride): (usize, usize, usize),
        layout: MapLayout,
    ) -> Result<Self> {
        let expanded = planes * 4;
        let conv = |name: &str, bn: &str, dims, padding| {
            conv_bn(vb.pp(name), vb.pp(bn), dims, 1, padding, layout)
        };
        let downsample = if stride > 1 || inplanes != expanded {
            Some(conv(
                "downsample.0",
                "downsample.1",
                (inplanes, expanded, 1),
                0,
            )?)
        } else {
            None
        };
        Ok(Self {
            conv1: conv("conv1", "bn1", (inplanes, planes, 1), 0)?,
            conv2: conv("conv2", "bn2", (planes, planes, 3), 1)?,
            conv3: conv("conv3", "bn3", (planes, expanded, 1), 0)?,
            downsample,
            stride,
            layout,
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let mut out = self.conv1.forward(xs, None, true)?;
        out = self.conv2.forward(&out, None, true)?;
        if self.stride > 1 {
            out = self.layout.avg_pool(&out, self.stride)?;
        }
        let identity = match &self.downsample {
            Some(conv) if self.stride > 1 => {
                conv.forward(&self.layout.avg_pool(xs, self.stride)?, None, false)?
            }
            Some(conv) => conv.forward(xs, None, false)?,
            None => xs.clone(),
        };
        self.conv3.forward(&out, Some(&identity), true)
    }
}

/// Attention pooling: one query (the mean token) over all positions.
#[derive(Debug, Clone)]
struct AttentionPool {
    positional_embedding: Tensor,
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    c_proj: Linear,
    heads: usize,
}

impl AttentionPool {
    fn new(vb: VarBuilder, grid: usize, width: usize, heads: usize, out: usize) -> Result<Self> {
        Ok(Self {
            positional_embedding: vb.get((grid * grid + 1, width), "positional_embedding")?,
            q_proj: candle_nn::linear(width, width, vb.pp("q_proj"))?,
            k_proj: candle_nn::linear(width, width, vb.pp("k_proj"))?,
            v_proj: candle_nn::linear(width, width, vb.pp("v_proj"))?,
            c_proj: candle_nn::linear(width, out, vb.pp("c_proj"))?,
            heads,
        })
    }

    /// (batch, positions, width) -> (batch, out)
    fn forward(&self, tokens: &Tensor) -> Result<Tensor> {
        let (b, positions, c) = tokens.dims3()?;
        let mean = tokens.mean_keepdim(1)?;
        let tokens = Tensor::cat(&[&mean, tokens], 1)?
            .broadcast_add(&self.positional_embedding.narrow(0, 0, positions + 1)?)?;
        let t = positions + 1;
        let head_dim = c / self.heads;
        let scale = (head_dim as f64).powf(-0.5);
        let split = |x: Tensor, n: usize| -> Result<Tensor> {
            x.reshape((b, n, self.heads, head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = split((self.q_proj.forward(&tokens.narrow(1, 0, 1)?)? * scale)?, 1)?;
        let k = split(self.k_proj.forward(&tokens)?, t)?;
        let v = split(self.v_proj.forward(&tokens)?, t)?;
        let scores = q.matmul(&k.t()?)?;
        let in_dtype = scores.dtype();
        let probs =
            candle_nn::ops::softmax_last_dim(&scores.to_dtype(DType::F32)?)?.to_dtype(in_dtype)?;
        let pooled = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, c))?;
        self.c_proj.forward(&pooled)
    }
}

/// The whole tower: stem, four stages, attention pool. Its output is the
/// image embedding (no separate projection).
#[derive(Debug, Clone)]
pub struct ModifiedResNet {
    stem: [Conv; 3],
    stages: Vec<Vec<Bottleneck>>,
    attnpool: AttentionPool,
    layout: MapLayout,
}

impl ModifiedResNet {
    /// `vb` at `visual`; `image_size` the input resolution; `output_dim`
    /// the joint embedding width. The maps take the layout that runs
    /// fastest on the builder's device and dtype ([`MapLayout::for_device`]).
    pub fn new(
        vb: VarBuilder,
        cfg: &ResNetConfig,
        image_size: usize,
        output_dim: usize,
    ) -> Result<Self> {
        let layout = MapLayout::for_device(vb.device(), vb.dtype());
        Self::with_layout(vb, cfg, (image_size, output_dim), layout)
    }

    /// [`ModifiedResNet::new`] with the feature-map layout chosen by the
    /// caller.
    pub fn with_layout(
        vb: VarBuilder,
        cfg: &ResNetConfig,
        (image_size, output_dim): (usize, usize),
        layout: MapLayout,
    ) -> Result<Self> {
        let w = cfg.width;
        let stem_conv = |i: usize, dims, stride| {
            let (conv, bn) = (format!("conv{i}"), format!("bn{i}"));
            conv_bn(vb.pp(conv), vb.pp(bn), dims, stride, 1, layout)
        };
        let stem = [
            stem_conv(1, (3, w / 2, 3), 2)?,
            stem_conv(2, (w / 2, w / 2, 3), 1)?,
            stem_conv(3, (w / 2, w, 3), 1)?,
        ];
        let mut inplanes = w;
        let mut stages = Vec::with_capacity(4);
        for (i, &blocks) in cfg.layers.iter().enumerate() {
            let planes = w << i;
            let vb_stage = vb.pp(format!("layer{}", i + 1));
            let mut stage = Vec::with_capacity(blocks);
            for j in 0..blocks {
                let stride = if i > 0 && j == 0 { 2 } else { 1 };
                stage.push(Bottleneck::new(
                    vb_stage.pp(j),
                    (inplanes, planes, stride),
                    layout,
                )?);
                inplanes = planes * 4;
            }
            stages.push(stage);
        }
        let attnpool = AttentionPool::new(
            vb.pp("attnpool"),
            image_size / 32,
            cfg.embed_width(),
            cfg.heads,
            output_dim,
        )?;
        Ok(Self {
            stem,
            stages,
            attnpool,
            layout,
        })
    }

    /// `pixels`: (batch, 3, size, size) -> (batch, output_dim).
    pub fn forward(&self, pixels: &Tensor) -> Result<Tensor> {
        let mut xs = self.layout.from_nchw(pixels)?;
        for conv in &self.stem {
            xs = conv.forward(&xs, None, true)?;
        }
        xs = self.layout.avg_pool(&xs, 2)?;
        for stage in &self.stages {
            for block in stage {
                xs = block.forward(&xs)?;
            }
        }
        // The attention pool's tokens: one per position, channels last.
        let tokens = self.layout.tokens(&xs)?;
        profile::time("resnet: attention pool", tokens.device(), || {
            self.attnpool.forward(&tokens)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClipConfig;
    use crate::checkpoint::write_random_model;
    use crate::test_support::max_abs_diff;
    use candle_core::Device;

    /// The channels-last tower (what CUDA and the CPU in f32 run) computes
    /// what candle's NCHW convolutions compute: same weights, same pixels.
    #[test]
    fn channels_last_tower_equals_the_nchw_one() {
        let dir = tempfile::tempdir().unwrap();
        // 64 px: a 2x2 map at the attention pool; stage 2 has a strided
        // block with a downsample branch, stage 1 a non-strided one.
        let config = ClipConfig::resnet([1, 2, 1, 1], 8, 64, 16, 8, 2);
        write_random_model(dir.path(), &config, 7).unwrap();
        let dev = Device::Cpu;
        let weights = dir.path().join("open_clip_model.safetensors");
        // SAFETY: a file this test just wrote and nothing else touches.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[weights], DType::F32, &dev) }
            .unwrap()
            .pp("visual");
        let cfg = config.resnet.as_ref().unwrap();
        let build =
            |layout| ModifiedResNet::with_layout(vb.clone(), cfg, (64, 16), layout).unwrap();
        let pixels = Tensor::randn(0f32, 1.0, (3, 3, 64, 64), &dev).unwrap();
        let nchw = build(MapLayout::Nchw).forward(&pixels).unwrap();
        let channels_last = build(MapLayout::ChannelsLast).forward(&pixels).unwrap();
        assert_eq!(nchw.dims(), &[3, 16]);
        let diff = max_abs_diff(&nchw, &channels_last);
        let scale = max_abs_diff(&nchw, &nchw.zeros_like().unwrap());
        assert!(
            diff <= 1e-4 * scale.max(1.0),
            "max difference {diff} (scale {scale})"
        );
    }
}
