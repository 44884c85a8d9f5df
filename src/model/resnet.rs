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

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, Linear, VarBuilder};

use super::clip_config::ResNetConfig;

/// torch's BatchNorm2d default.
const BATCH_NORM_EPS: f64 = 1e-5;

/// A bias-free convolution followed by BatchNorm, as one convolution.
fn conv_bn(
    conv: VarBuilder,
    bn: VarBuilder,
    (inp, out, kernel): (usize, usize, usize),
    stride: usize,
    padding: usize,
) -> Result<Conv2d> {
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
    Ok(Conv2d::new(
        weight.to_dtype(dtype)?,
        Some(bias.to_dtype(dtype)?),
        Conv2dConfig {
            padding,
            stride,
            ..Default::default()
        },
    ))
}

/// A bottleneck block (1x1, 3x3, avg-pool by the stride, 1x1 to 4x planes).
#[derive(Debug, Clone)]
struct Bottleneck {
    conv1: Conv2d,
    conv2: Conv2d,
    conv3: Conv2d,
    /// Average pool, then 1x1 conv + BN: when the stride or width changes.
    downsample: Option<Conv2d>,
    stride: usize,
}

impl Bottleneck {
    fn new(vb: VarBuilder, inplanes: usize, planes: usize, stride: usize) -> Result<Self> {
        let expanded = planes * 4;
        let downsample = if stride > 1 || inplanes != expanded {
            Some(conv_bn(
                vb.pp("downsample.0"),
                vb.pp("downsample.1"),
                (inplanes, expanded, 1),
                1,
                0,
            )?)
        } else {
            None
        };
        Ok(Self {
            conv1: conv_bn(vb.pp("conv1"), vb.pp("bn1"), (inplanes, planes, 1), 1, 0)?,
            conv2: conv_bn(vb.pp("conv2"), vb.pp("bn2"), (planes, planes, 3), 1, 1)?,
            conv3: conv_bn(vb.pp("conv3"), vb.pp("bn3"), (planes, expanded, 1), 1, 0)?,
            downsample,
            stride,
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let mut out = self.conv1.forward(xs)?.relu()?;
        out = self.conv2.forward(&out)?.relu()?;
        if self.stride > 1 {
            out = out.avg_pool2d(self.stride)?;
        }
        out = self.conv3.forward(&out)?;
        let identity = match &self.downsample {
            Some(conv) if self.stride > 1 => conv.forward(&xs.avg_pool2d(self.stride)?)?,
            Some(conv) => conv.forward(xs)?,
            None => xs.clone(),
        };
        (out + identity)?.relu()
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

    /// (batch, width, h, w) -> (batch, out)
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = xs.dims4()?;
        let tokens = xs.reshape((b, c, h * w))?.transpose(1, 2)?;
        let mean = tokens.mean_keepdim(1)?;
        let tokens = Tensor::cat(&[&mean, &tokens], 1)?
            .broadcast_add(&self.positional_embedding.narrow(0, 0, h * w + 1)?)?;
        let t = h * w + 1;
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
    stem: [Conv2d; 3],
    stages: Vec<Vec<Bottleneck>>,
    attnpool: AttentionPool,
}

impl ModifiedResNet {
    /// `vb` at `visual`; `image_size` the input resolution; `output_dim`
    /// the joint embedding width.
    pub fn new(
        vb: VarBuilder,
        cfg: &ResNetConfig,
        image_size: usize,
        output_dim: usize,
    ) -> Result<Self> {
        let w = cfg.width;
        let stem = [
            conv_bn(vb.pp("conv1"), vb.pp("bn1"), (3, w / 2, 3), 2, 1)?,
            conv_bn(vb.pp("conv2"), vb.pp("bn2"), (w / 2, w / 2, 3), 1, 1)?,
            conv_bn(vb.pp("conv3"), vb.pp("bn3"), (w / 2, w, 3), 1, 1)?,
        ];
        let mut inplanes = w;
        let mut stages = Vec::with_capacity(4);
        for (i, &blocks) in cfg.layers.iter().enumerate() {
            let planes = w << i;
            let vb_stage = vb.pp(format!("layer{}", i + 1));
            let mut stage = Vec::with_capacity(blocks);
            for j in 0..blocks {
                let stride = if i > 0 && j == 0 { 2 } else { 1 };
                stage.push(Bottleneck::new(vb_stage.pp(j), inplanes, planes, stride)?);
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
        })
    }

    /// `pixels`: (batch, 3, size, size) -> (batch, output_dim).
    pub fn forward(&self, pixels: &Tensor) -> Result<Tensor> {
        let mut xs = pixels.clone();
        for conv in &self.stem {
            xs = conv.forward(&xs)?.relu()?;
        }
        xs = xs.avg_pool2d(2)?;
        for stage in &self.stages {
            for block in stage {
                xs = block.forward(&xs)?;
            }
        }
        self.attnpool.forward(&xs)
    }
}
