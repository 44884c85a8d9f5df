//! A CLIP model: image tower, text tower, the two projections into the joint
//! embedding space, and the learned temperature (`logit_scale`).
//!
//! Reference: Radford et al., "Learning Transferable Visual Models From
//! Natural Language Supervision" (2021), <https://github.com/openai/CLIP>.
//! Tensor names are those of Hugging Face's `CLIPModel`
//! (`vision_model.*`, `text_model.*`, `visual_projection`, `text_projection`,
//! `logit_scale`), as in `openai/clip-vit-base-patch32/model.safetensors`;
//! a ResNet image tower keeps OpenAI's `visual.*` names (`towers/resnet.rs`).

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use crate::config::ClipConfig;
use crate::profile;
use crate::text::Tokens;
use crate::towers::{ModifiedResNet, TextTransformer, VisionTransformer};

/// The image tower of a CLIP model and what maps it to the joint space.
#[derive(Debug, Clone)]
enum ImageTower {
    /// A ViT's pooled token, then `visual_projection`.
    Vit {
        tower: VisionTransformer,
        projection: Linear,
    },
    /// OpenAI's ModifiedResNet, whose attention pool outputs the embedding.
    ResNet(ModifiedResNet),
}

#[derive(Debug, Clone)]
pub struct ClipModel {
    image: ImageTower,
    text: TextTransformer,
    text_projection: Linear,
    logit_scale: f32,
    config: ClipConfig,
}

impl ClipModel {
    pub fn new(vb: VarBuilder, config: &ClipConfig) -> Result<Self> {
        let v = &config.vision_config;
        let t = &config.text_config;
        let d = config.projection_dim;
        let logit_scale = read_scalar(&vb, "logit_scale")?;
        let image = match &config.resnet {
            Some(resnet) => ImageTower::ResNet(ModifiedResNet::new(
                vb.pp("visual"),
                resnet,
                v.image_size,
                d,
            )?),
            None => ImageTower::Vit {
                tower: VisionTransformer::new(vb.pp("vision_model"), v)?,
                projection: candle_nn::linear_no_bias(
                    v.hidden_size,
                    d,
                    vb.pp("visual_projection"),
                )?,
            },
        };
        Ok(Self {
            image,
            text: TextTransformer::new(vb.pp("text_model"), t)?,
            text_projection: candle_nn::linear_no_bias(t.hidden_size, d, vb.pp("text_projection"))?,
            logit_scale,
            config: config.clone(),
        })
    }

    pub fn config(&self) -> &ClipConfig {
        &self.config
    }

    /// `exp(logit_scale)`: the factor between cosine similarity and logits.
    pub fn logit_scale_exp(&self) -> f32 {
        self.logit_scale.exp()
    }

    /// Image embeddings (batch, projection_dim), not normalised.
    /// `pixels`: (batch, 3, size, size) in the model's dtype and device.
    pub fn encode_image(&self, pixels: &Tensor) -> Result<Tensor> {
        profile::time("image tower, whole pass", pixels.device(), || {
            match &self.image {
                ImageTower::Vit { tower, projection } => {
                    projection.forward(&tower.forward(pixels)?)
                }
                ImageTower::ResNet(tower) => tower.forward(pixels),
            }
        })
    }

    /// Text embeddings (batch, projection_dim), not normalised. The prompts
    /// are padded with 0 to the longest one in `prompts`.
    pub fn encode_text(&self, prompts: &[Tokens], device: &Device) -> Result<Tensor> {
        let longest = prompts
            .iter()
            .map(|p| p.ids.len())
            .max()
            .unwrap_or(1)
            .max(1);
        let t = longest.min(self.text.max_tokens());
        let mut ids = vec![0u32; prompts.len() * t];
        let mut pool_at = Vec::with_capacity(prompts.len());
        for (row, prompt) in prompts.iter().enumerate() {
            let n = prompt.ids.len().min(t);
            ids[row * t..row * t + n].copy_from_slice(&prompt.ids[..n]);
            pool_at.push(prompt.pool_position().min(t - 1));
        }
        let ids = Tensor::from_vec(ids, (prompts.len(), t), device)?;
        self.text_projection
            .forward(&self.text.forward(&ids, &pool_at)?)
    }
}

/// A scalar parameter stored as shape `[]` (transformers) or `[1]` (some
/// conversions).
fn read_scalar(vb: &VarBuilder, name: &str) -> Result<f32> {
    let t = if vb.contains_tensor(name) {
        match vb.get((), name) {
            Ok(t) => t,
            Err(_) => vb.get(1, name)?.squeeze(0)?,
        }
    } else {
        // Let the error name the missing tensor.
        vb.get((), name)?
    };
    t.to_dtype(DType::F32)?.to_scalar::<f32>()
}
