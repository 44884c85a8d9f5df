//! Architecture of a CLIP model: the widths, depths and sizes its weights
//! need, read from a Hugging Face `config.json` (`CLIPConfig`), with the
//! defaults of `transformers`' `CLIPTextConfig` / `CLIPVisionConfig` for
//! fields a checkpoint leaves out.

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// The MLP non-linearity of the transformer blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// `x * sigmoid(1.702 x)`: OpenAI's checkpoints.
    QuickGelu,
    /// The exact (erf) GELU.
    Gelu,
    /// The tanh approximation of GELU.
    #[serde(alias = "gelu_pytorch_tanh")]
    GeluNew,
}

fn quick_gelu() -> Activation {
    Activation::QuickGelu
}
fn layer_norm_eps() -> f64 {
    1e-5
}

/// The text tower (`text_config`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextConfig {
    #[serde(default = "TextConfig::default_vocab_size")]
    pub vocab_size: usize,
    #[serde(default = "TextConfig::default_hidden_size")]
    pub hidden_size: usize,
    #[serde(default = "TextConfig::default_intermediate_size")]
    pub intermediate_size: usize,
    #[serde(default = "TextConfig::default_num_hidden_layers")]
    pub num_hidden_layers: usize,
    #[serde(default = "TextConfig::default_num_attention_heads")]
    pub num_attention_heads: usize,
    #[serde(default = "TextConfig::default_max_position_embeddings")]
    pub max_position_embeddings: usize,
    #[serde(default = "quick_gelu")]
    pub hidden_act: Activation,
    #[serde(default = "layer_norm_eps")]
    pub layer_norm_eps: f64,
}

impl TextConfig {
    fn default_vocab_size() -> usize {
        49408
    }
    fn default_hidden_size() -> usize {
        512
    }
    fn default_intermediate_size() -> usize {
        2048
    }
    fn default_num_hidden_layers() -> usize {
        12
    }
    fn default_num_attention_heads() -> usize {
        8
    }
    fn default_max_position_embeddings() -> usize {
        77
    }
}

impl Default for TextConfig {
    fn default() -> Self {
        // `{}` takes every serde default above.
        #[allow(clippy::expect_used)]
        serde_json::from_str("{}").expect("defaults deserialize")
    }
}

/// The image tower (`vision_config`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VisionConfig {
    #[serde(default = "VisionConfig::default_hidden_size")]
    pub hidden_size: usize,
    #[serde(default = "VisionConfig::default_intermediate_size")]
    pub intermediate_size: usize,
    #[serde(default = "VisionConfig::default_num_hidden_layers")]
    pub num_hidden_layers: usize,
    #[serde(default = "VisionConfig::default_num_attention_heads")]
    pub num_attention_heads: usize,
    #[serde(default = "VisionConfig::default_image_size")]
    pub image_size: usize,
    #[serde(default = "VisionConfig::default_patch_size")]
    pub patch_size: usize,
    #[serde(default = "VisionConfig::default_num_channels")]
    pub num_channels: usize,
    #[serde(default = "quick_gelu")]
    pub hidden_act: Activation,
    #[serde(default = "layer_norm_eps")]
    pub layer_norm_eps: f64,
}

impl VisionConfig {
    fn default_hidden_size() -> usize {
        768
    }
    fn default_intermediate_size() -> usize {
        3072
    }
    fn default_num_hidden_layers() -> usize {
        12
    }
    fn default_num_attention_heads() -> usize {
        12
    }
    fn default_image_size() -> usize {
        224
    }
    fn default_patch_size() -> usize {
        32
    }
    fn default_num_channels() -> usize {
        3
    }

    /// Patches per side.
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }
}

impl Default for VisionConfig {
    fn default() -> Self {
        #[allow(clippy::expect_used)]
        serde_json::from_str("{}").expect("defaults deserialize")
    }
}

/// OpenAI's ModifiedResNet image tower (the RN family), as open_clip's
/// `vision_cfg` describes it when `layers` is a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResNetConfig {
    /// Bottleneck blocks per stage, e.g. `[3, 4, 6, 3]` for RN50.
    pub layers: [usize; 4],
    /// Stem width; stage `i` has `width * 2^i` planes, the last stage
    /// `width * 32` output channels.
    pub width: usize,
    /// Heads of the attention pool.
    pub heads: usize,
}

impl ResNetConfig {
    /// Channels entering the attention pool.
    pub fn embed_width(&self) -> usize {
        self.width * 32
    }

    /// Parameters of the tower: the stem, the bottleneck stages (folded
    /// BatchNorms count their scale and shift) and the attention pool.
    fn parameter_count(&self, image_size: usize, output_dim: usize) -> usize {
        let w = self.width;
        let conv_bn = |inp: usize, out: usize, k: usize| inp * out * k * k + 2 * out;
        let mut n = conv_bn(3, w / 2, 3) + conv_bn(w / 2, w / 2, 3) + conv_bn(w / 2, w, 3);
        let mut inplanes = w;
        for (stage, &blocks) in self.layers.iter().enumerate() {
            let planes = w << stage;
            for block in 0..blocks {
                let strided = stage > 0 && block == 0;
                n += conv_bn(inplanes, planes, 1)
                    + conv_bn(planes, planes, 3)
                    + conv_bn(planes, 4 * planes, 1);
                if strided || inplanes != 4 * planes {
                    n += conv_bn(inplanes, 4 * planes, 1);
                }
                inplanes = 4 * planes;
            }
        }
        let (e, grid) = (self.embed_width(), image_size / 32);
        n + (grid * grid + 1) * e + 3 * (e * e + e) + e * output_dim + output_dim
    }
}

/// Parameters of `layers` pre-norm encoder layers of `width`, MLP `hidden`
/// wide: two layer norms, q/k/v/out projections, two MLP layers.
fn encoder_parameters(width: usize, hidden: usize, layers: usize) -> usize {
    layers * (4 * width + 4 * (width * width + width) + 2 * hidden * width + hidden + width)
}

/// A whole CLIP model (`CLIPConfig`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipConfig {
    #[serde(default)]
    pub text_config: TextConfig,
    /// The ViT image tower; for a ResNet model only `image_size` is used.
    #[serde(default)]
    pub vision_config: VisionConfig,
    /// Set for a ResNet image tower, which replaces the ViT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resnet: Option<ResNetConfig>,
    /// Width of the joint embedding space.
    #[serde(default = "ClipConfig::default_projection_dim")]
    pub projection_dim: usize,
    /// Initial value of `logit_scale` (the checkpoint's own tensor wins).
    #[serde(default = "ClipConfig::default_logit_scale")]
    pub logit_scale_init_value: f64,
}

impl ClipConfig {
    fn default_projection_dim() -> usize {
        512
    }
    fn default_logit_scale() -> f64 {
        2.6592
    }

    /// Parse a Hugging Face `config.json`.
    pub fn from_json(text: &str) -> Result<ClipConfig, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Check the numbers fit together before any tensor is read, so a
    /// broken config gives a sentence rather than a shape error.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.inconsistency()
            .map_or(Ok(()), |problem| Err(ConfigError::Inconsistent(problem)))
    }

    /// What does not fit together, in words.
    fn inconsistency(&self) -> Option<String> {
        let v = &self.vision_config;
        let t = &self.text_config;
        if let Some(r) = &self.resnet {
            // Five halvings (stem stride, stem pool, three strided stages).
            if v.image_size == 0 || !v.image_size.is_multiple_of(32) {
                return Some(format!(
                    "ResNet image_size {} is not a multiple of 32",
                    v.image_size
                ));
            }
            if r.width < 2 || !r.width.is_multiple_of(2) {
                return Some(format!("ResNet width {} is not an even width", r.width));
            }
            if r.heads == 0 || !r.embed_width().is_multiple_of(r.heads) {
                return Some(format!(
                    "ResNet attention pool width {} is not divisible by {} heads",
                    r.embed_width(),
                    r.heads
                ));
            }
        }
        if v.patch_size == 0 || !v.image_size.is_multiple_of(v.patch_size) {
            return Some(format!(
                "vision image_size {} is not a multiple of patch_size {}",
                v.image_size, v.patch_size
            ));
        }
        if v.num_attention_heads == 0 || !v.hidden_size.is_multiple_of(v.num_attention_heads) {
            return Some(format!(
                "vision hidden_size {} is not divisible by num_attention_heads {}",
                v.hidden_size, v.num_attention_heads
            ));
        }
        if t.num_attention_heads == 0 || !t.hidden_size.is_multiple_of(t.num_attention_heads) {
            return Some(format!(
                "text hidden_size {} is not divisible by num_attention_heads {}",
                t.hidden_size, t.num_attention_heads
            ));
        }
        if self.projection_dim == 0 {
            return Some("projection_dim is 0".to_string());
        }
        None
    }

    /// Trainable parameters of a model of this shape, counted as
    /// `sum(p.numel() for p in model.parameters())` counts them in the
    /// reference (BatchNorm running statistics are buffers, not parameters).
    pub fn parameter_count(&self) -> usize {
        let t = &self.text_config;
        let d = self.projection_dim;
        let text = t.vocab_size * t.hidden_size
            + t.max_position_embeddings * t.hidden_size
            + encoder_parameters(t.hidden_size, t.intermediate_size, t.num_hidden_layers)
            + 2 * t.hidden_size
            + d * t.hidden_size;
        let image = match &self.resnet {
            Some(r) => r.parameter_count(self.vision_config.image_size, d),
            None => {
                let v = &self.vision_config;
                let w = v.hidden_size;
                let patch = v.num_channels * v.patch_size * v.patch_size;
                w + w * patch
                    + (v.grid() * v.grid() + 1) * w
                    + 2 * w
                    + encoder_parameters(w, v.intermediate_size, v.num_hidden_layers)
                    + 2 * w
                    + d * w
            }
        };
        // + logit_scale
        text + image + 1
    }

    /// A ResNet CLIP of the given shape; the attention pool has
    /// `width * 32 / 64` heads as in OpenAI's models.
    pub fn resnet(
        layers: [usize; 4],
        width: usize,
        image_size: usize,
        embed_dim: usize,
        text_width: usize,
        text_heads: usize,
    ) -> ClipConfig {
        let resnet = ResNetConfig {
            layers,
            width,
            heads: (width * 32 / 64).max(1),
        };
        let mut c = ClipConfig::vit(
            resnet.embed_width(),
            layers.iter().sum(),
            resnet.heads,
            image_size,
            32,
            embed_dim,
            text_width,
            text_heads,
        );
        c.resnet = Some(resnet);
        c
    }

    /// A few-kilobyte model with the real layout, for tests and examples.
    pub fn tiny() -> ClipConfig {
        let mut c = ClipConfig::vit(32, 2, 4, 32, 8, 24, 32, 4);
        c.text_config.num_hidden_layers = 2;
        c
    }

    /// A ViT CLIP of the given shape (MLPs 4x as wide as their layers, 12
    /// text layers, OpenAI's vocabulary and context).
    #[allow(clippy::too_many_arguments)]
    pub fn vit(
        vision_width: usize,
        vision_layers: usize,
        vision_heads: usize,
        image_size: usize,
        patch_size: usize,
        projection_dim: usize,
        text_width: usize,
        text_heads: usize,
    ) -> ClipConfig {
        ClipConfig {
            text_config: TextConfig {
                hidden_size: text_width,
                intermediate_size: text_width * 4,
                num_attention_heads: text_heads,
                ..TextConfig::default()
            },
            vision_config: VisionConfig {
                hidden_size: vision_width,
                intermediate_size: vision_width * 4,
                num_hidden_layers: vision_layers,
                num_attention_heads: vision_heads,
                image_size,
                patch_size,
                ..VisionConfig::default()
            },
            projection_dim,
            logit_scale_init_value: ClipConfig::default_logit_scale(),
            resnet: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_fields_take_transformers_defaults() {
        let c = ClipConfig::from_json(
            r#"{"projection_dim": 768, "vision_config": {"patch_size": 14}}"#,
        )
        .unwrap();
        assert_eq!(c.projection_dim, 768);
        assert_eq!(c.vision_config.patch_size, 14);
        assert_eq!(c.vision_config.hidden_size, 768);
        assert_eq!(c.text_config.max_position_embeddings, 77);
        assert_eq!(c.text_config.hidden_act, Activation::QuickGelu);
        c.validate().unwrap();
    }

    #[test]
    fn validate_explains_inconsistent_shapes() {
        let mut c = ClipConfig::tiny();
        c.vision_config.patch_size = 7;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("patch_size"), "{err}");
    }

    #[test]
    fn resnet_inputs_must_survive_five_halvings() {
        ClipConfig::tiny().validate().unwrap();
        let mut odd = ClipConfig::resnet([3, 4, 6, 3], 64, 224, 1024, 512, 8);
        odd.validate().unwrap();
        odd.vision_config.image_size = 200;
        let err = odd.validate().unwrap_err().to_string();
        assert!(err.contains("multiple of 32"), "{err}");
    }
}
